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
from engine.dsl.loader import check_paths, load_journey
from engine.dsl.mermaid import to_mermaid
from engine.dsl.schema import journey_json_schema, segment_json_schema


class SchemaKind(StrEnum):
    journey = "journey"
    segment = "segment"


def register(app: typer.Typer) -> None:
    """Add the authoring commands to ``app`` (the ``journey`` CLI)."""
    app.command("validate")(validate)
    app.command("graph")(graph)
    app.command("schema")(schema)


def validate(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Journey / segment files, or folders searched for *.yaml / *.yml."),
    ],
) -> None:
    """Check journeys and segments; print every problem as file:line:col: where: message."""
    results = check_paths(paths)
    problems = [p for checked in results for p in checked.problems]
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        raise typer.Exit(1)
    counts = Counter(checked.kind for checked in results if checked.kind is not None)
    summary = ", ".join(
        f"{n} {kind.name if n == 1 else kind.plural}"
        for kind, n in sorted(counts.items(), key=lambda item: item[0].name)
    )
    typer.echo(f"ok: {summary or 'no files'}")


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
) -> None:
    """Print the JSON Schema of a journey or segment file (for editor completion)."""
    body = journey_json_schema() if kind is SchemaKind.journey else segment_json_schema()
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))
