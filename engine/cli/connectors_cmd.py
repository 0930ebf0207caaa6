"""``journey connectors`` and ``journey preview``: what can send, and what a person would get.

``connectors`` reads settings only (no network): every installed connector (built-in or entry
point), whether it is configured (a missing setting is named), the channels mapped to it, and the
provider quotas the cap service should enforce. Exit code 1 when a mapped channel cannot send.

``preview TEMPLATE --profile ID`` checks the template as deploy would, reads the person from the
store and prints each rendered field in the person's locale (or ``--locale``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Annotated

import httpx
import typer

from connectors.registry import ConnectorRegistry, ConnectorSettings
from engine.domain import Profile
from engine.settings import Settings
from engine.templates import TemplateError, load_templates, locale_chain, render_message


def register(app: typer.Typer) -> None:
    """Add ``connectors`` and ``preview`` to ``app`` (the ``journey`` CLI)."""
    app.command("connectors")(connectors)
    app.command("preview")(preview)


def connectors() -> None:
    """List installed connectors, whether each is configured, and the channels each sends."""

    async def go() -> tuple[list[tuple[str, bool, str]], list[str], dict[str, str]]:
        async with httpx.AsyncClient() as client:  # never used: factories do no I/O
            registry = ConnectorRegistry.from_settings(ConnectorSettings(), client)
            rows, problems = registry.installed(), registry.check()
            quotas = {
                channel: f"{q.max} {q.kind} per {q.window} per {q.scope}"
                + (f" ({q.timezone})" if q.timezone else "")
                for channel, q in registry.quotas().items()
            }
            await registry.aclose()
            return rows, problems, quotas

    rows, problems, quotas = asyncio.run(go())
    width = max((len(name) for name, _, _ in rows), default=10)
    for name, configured, detail in rows:
        state = "ok     " if configured else "missing"
        typer.echo(f"{name:<{width}}  {state}  {detail}")
    for channel, quota in sorted(quotas.items()):
        typer.echo(f"quota: channel {channel!r}: {quota}")
    for problem in problems:
        typer.echo(f"cannot send: {problem}", err=True)
    if problems:
        raise typer.Exit(1)


def preview(
    template: Annotated[str, typer.Argument(help="template name (a file in the templates folder)")],
    profile: Annotated[str, typer.Option("--profile", help="profile id to render for")],
    locale: Annotated[
        str | None, typer.Option(help="render this locale instead of the person's")
    ] = None,
    templates_dir: Annotated[
        Path | None,
        typer.Option(
            "--templates", help="templates folder; default: JOURNEY_JOURNEYS_DIR/templates"
        ),
    ] = None,
) -> None:
    """Render one template for one person, as a send would (sandboxed, strict)."""
    from engine.store import Store

    settings = Settings()
    directory = templates_dir or settings.journeys_dir / "templates"
    try:
        templates = load_templates(directory, {template})
    except TemplateError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None

    async def fetch() -> Profile | None:
        store = Store.from_url(settings.resolved_database_url())
        try:
            return await store.get_profile(profile)
        finally:
            await store.aclose()

    person = asyncio.run(fetch())
    if person is None:
        typer.echo(f"no profile {profile!r} in {settings.resolved_database_url()}", err=True)
        raise typer.Exit(1)
    if locale is not None:
        person = dataclasses.replace(person, locale=locale)
    variants = [f"{template}@{c}" for c in locale_chain(person.locale)]
    chosen = next((v for v in variants if v in templates), template)
    try:
        content = render_message(
            templates, template, person, {"journey": {"id": "preview"}, "step": {"id": "preview"}}
        )
    except TemplateError as exc:
        typer.echo(f"{template}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"# {chosen} for {profile} (locale {person.locale})")
    for field, text in content.items():
        lines = text.splitlines() or [""]
        typer.echo(f"{field}: {lines[0]}")
        for line in lines[1:]:
            typer.echo(f"    {line}")
