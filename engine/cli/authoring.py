"""Authoring commands: ``journey validate``, ``journey graph``, ``journey schema``.

They read files only (no Temporal, no store), so a marketer or a CI job can run them anywhere.
A bad file is never a traceback: each problem is one ``file:line:col: where: message`` line on
stdout and the exit code is 1.
"""

from __future__ import annotations

import json
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from engine.dsl.errors import DslError
from engine.dsl.loader import SUFFIXES, TEMPLATES, check_paths, load_journey
from engine.dsl.mermaid import to_mermaid
from engine.dsl.schema import schema_text, write_schemas
from engine.templates import check_template_file


class SchemaKind(StrEnum):
    """The kinds of `engine.dsl.schema.KINDS` (a test holds the two equal)."""

    journey = "journey"
    segment = "segment"
    policy = "policy"
    tiers = "tiers"
    template = "template"


def register(app: typer.Typer) -> None:
    """Add the authoring commands to ``app`` (the ``journey`` CLI)."""
    app.command("validate")(validate)
    app.command("graph")(graph)
    app.command("schema")(schema)


def validate(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Journey, segment, policy, tiers and template files, or folders searched for "
            "*.yaml / *.yml (files in a templates/ folder are message templates)."
        ),
    ],
) -> None:
    """Check every file; print every problem as file:line:col: where: message."""
    documents, templates = _split(paths)
    results = check_paths(documents) if documents else []
    problems = [str(p) for checked in results for p in checked.problems]
    problems += [p for template in templates for p in check_template_file(template)]
    for problem in problems:
        typer.echo(problem)
    if problems:
        raise typer.Exit(1)
    counts = Counter(checked.kind.name for checked in results if checked.kind is not None)
    plurals = {checked.kind.name: checked.kind.plural for checked in results if checked.kind}
    if templates:
        counts["template"] = len(templates)
        plurals["template"] = "templates"
    summary = ", ".join(
        f"{n} {kind if n == 1 else plurals[kind]}" for kind, n in sorted(counts.items())
    )
    typer.echo(f"ok: {summary or 'no files'}")


def _split(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """The paths for `check_paths`, and the template files (in a ``templates/`` folder)."""
    documents: list[Path] = []
    templates: list[Path] = []
    for given in paths:
        if not given.is_dir():
            (templates if TEMPLATES in given.parent.parts else documents).append(given)
            continue
        found = [f for f in given.rglob("*") if f.suffix in SUFFIXES and f.is_file()]
        inside = sorted(f for f in found if TEMPLATES in f.parent.parts)
        templates += inside
        if len(inside) < len(found) or not found:
            documents.append(given)  # check_paths skips templates/ folders itself
    return documents, templates


def graph(
    path: Annotated[Path, typer.Argument(help="A journey file.")],
) -> None:
    """Print the journey's steps as a Mermaid flowchart (paste into any Mermaid viewer)."""
    try:
        journey = load_journey(path)
    except DslError as exc:
        for problem in exc.problems:
            typer.echo(str(problem))
        raise typer.Exit(1) from None
    typer.echo(to_mermaid(journey), nl=False)


def schema(
    kind: Annotated[
        SchemaKind, typer.Option("--kind", help="Which file's schema to print.")
    ] = SchemaKind.journey,
    write: Annotated[
        Path | None,
        typer.Option(
            "--write",
            help="Write every kind's schema into this folder and print the yaml.schemas "
            "setting of VS Code's YAML extension.",
        ),
    ] = None,
) -> None:
    """Print the JSON Schema of a file kind (journey, segment, policy, tiers, template), for
    editor completion, hover documentation and checks; or write them all with --write."""
    if write is None:
        typer.echo(schema_text(kind.value), nl=False)
        return
    mapping = write_schemas(write)
    typer.echo(json.dumps({"yaml.schemas": mapping}, indent=2, ensure_ascii=False))
