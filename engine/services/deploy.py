"""Deploying a journey: validate, compile its templates, store an immutable version.

The same content deploys to the same version; new content becomes version + 1. Runs in flight keep
the version they started with (it is pinned in their input); new entries get the latest.

`deploy_all` is all or nothing for a set of files: everything is read and checked first
(`prepare_file`: the journey, its templates), then the Temporal Schedules are brought in line with
what is about to be stored (a refused schedule raises `DeployError` before any version is
stored, and the schedules already changed are put back), and only then are the versions stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from engine.domain import JourneyVersion
from engine.dsl.loader import load_document, load_journey
from engine.dsl.models import Journey, SegmentEntry, SendStep
from engine.services.schedules import ScheduleSyncError
from engine.store import Store
from engine.templates import load_templates

log = structlog.get_logger(__name__)

SyncSchedules = Callable[[Sequence[Journey]], Awaitable[list[str]]]
"""`sync_schedules` bound to a client and settings: journeys about to be deployed -> ids."""


class DeployError(Exception):
    """A deploy that did not happen: nothing of it was stored. The message is one line."""


@dataclass(frozen=True)
class Prepared:
    """A journey file read and checked, with its compiled templates: ready to store."""

    path: Path
    journey: Journey
    templates: dict[str, dict[str, str]]

    @property
    def scheduled(self) -> bool:
        """Whether the journey enters people on a schedule (it needs Temporal to deploy)."""
        entry = self.journey.entry
        return isinstance(entry, SegmentEntry) and entry.schedule is not None


def prepare_file(path: Path) -> Prepared:
    """Read a journey file and the templates it names (``templates/`` beside it).

    Raises DslError (every problem, located) or TemplateError; nothing is written.
    """
    journey = load_journey(path)
    templates_dir = path.parent / "templates"
    templates = load_templates(templates_dir, journey.templates(), channels_by_template(journey))
    return Prepared(path, journey, templates)


@dataclass(frozen=True)
class Deployed:
    """What `deploy_all` did: (version, created) per journey in order, the schedules kept
    (None when they were not synced)."""

    versions: list[tuple[JourneyVersion, bool]]
    schedules: list[str] | None


async def deploy_all(
    store: Store, prepared: Sequence[Prepared], now: datetime, sync: SyncSchedules | None
) -> Deployed:
    """Store every prepared journey, after syncing the schedules with ``sync`` (None: Temporal
    is not reachable, schedules are left alone).

    Raises DeployError when Temporal refuses a schedule: no version is stored then, and the
    schedules are synced back to the versions already stored.
    """
    schedules = None
    if sync is not None:
        try:
            schedules = await sync([p.journey for p in prepared])
        except ScheduleSyncError as exc:
            try:
                await sync([])
            except ScheduleSyncError as again:
                log.warning("schedules_not_restored", error=str(again))
            raise DeployError(f"not deployed: {exc}; no journey version was stored") from None
    versions = [
        await _store_version(store, p.journey, p.templates, now, str(p.path)) for p in prepared
    ]
    return Deployed(versions, schedules)


async def deploy_journey(
    store: Store, journey: Journey, templates_dir: Path, now: datetime, source: str = ""
) -> tuple[JourneyVersion, bool]:
    """Store ``journey`` with the templates it names; (version, created). Raises TemplateError."""
    templates = load_templates(templates_dir, journey.templates(), channels_by_template(journey))
    return await _store_version(store, journey, templates, now, source)


async def _store_version(
    store: Store,
    journey: Journey,
    templates: dict[str, dict[str, str]],
    now: datetime,
    source: str,
) -> tuple[JourneyVersion, bool]:
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
