"""Deploying a journey: validate, compile its templates, store an immutable version.

The same content deploys to the same version; new content becomes version + 1. Runs in flight keep
the version they started with (it is pinned in their input); new entries get the latest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from engine.domain import JourneyVersion
from engine.dsl.loader import load_document, load_journey
from engine.dsl.models import Journey, SendStep
from engine.store import Store
from engine.templates import load_templates


async def deploy_journey(
    store: Store, journey: Journey, templates_dir: Path, now: datetime, source: str = ""
) -> tuple[JourneyVersion, bool]:
    """Store ``journey`` with the templates it names; (version, created). Raises TemplateError."""
    templates = load_templates(templates_dir, journey.templates(), channels_by_template(journey))
    return await store.deploy_version(
        journey.id,
        journey.content_hash() + ":" + _templates_hash(templates),
        journey.model_dump(mode="json", by_alias=True),
        templates,
        source,
        now,
    )


async def deploy_file(store: Store, path: Path, now: datetime) -> tuple[JourneyVersion, bool]:
    """Deploy a journey file; its templates are read from ``templates/`` beside it.

    Raises DslError (every problem, located) or TemplateError; nothing is stored then.
    """
    journey = load_journey(path)
    return await deploy_journey(store, journey, path.parent / "templates", now, str(path))


def journey_files(paths: Iterable[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Split files into journeys and the other recognised kinds (policy, segments), so that
    ``journey deploy journeys/*.yaml`` deploys the journeys and says what it passed over.
    Raises DslError for a file that is broken or not recognised."""
    journeys: list[Path] = []
    others: list[tuple[Path, str]] = []
    for path in paths:
        document = load_document(path)
        if isinstance(document, Journey):
            journeys.append(path)
        else:
            others.append((path, type(document).__name__.lower()))
    return journeys, others


def channels_by_template(journey: Journey) -> dict[str, set[str]]:
    """Template name -> the channels the journey sends it on (their fields are checked)."""
    channels: dict[str, set[str]] = {}
    for step in journey.steps:
        if isinstance(step, SendStep):
            channels.setdefault(step.send.template, set()).add(step.send.channel)
    return channels


def _templates_hash(templates: dict[str, dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(templates, sort_keys=True).encode()).hexdigest()[:16]
