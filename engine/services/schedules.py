"""Segment entry on a schedule: one Temporal Schedule per deployed segment-entry journey.

    ids = await sync_schedules(client, store, policy, journeys_dir=Path("journeys"),
                               task_queue="journeys", rules=load_tiers(...))

After a deploy, `sync_schedules` creates or updates schedule ``segment-entry:<journey_id>`` for
the latest version of every journey whose entry is ``{segment: ..., schedule: CRON}``: the cron
in the policy's timezone, overlap SKIP (an evaluation still running makes the next one skip), a
little jitter so that many journeys at 10:00 do not all hit the store in the same second. Its
action starts `SegmentEntryWorkflow` with a snapshot of the segment and the tier rules; schedules
of journeys that no longer enter by segment are deleted.

`SegmentEntryActivities.enter_segment_page` does the work of one workflow run: it pages through
the segment's members in id order (SQL, `segments.iter_members`) and enters each page
with the Enroller, heartbeating the last id entered, so a retried attempt resumes after it. No
person is started twice by one evaluation: re-entry rules and the one-live-run workflow id hold
for every page, and people the evaluation already entered (its enrollments are stamped with the
evaluation time) are left out before the Enroller is called, which also covers ``reentry:
always`` when an attempt crashed after starting some runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select
from temporalio import activity
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from engine.domain import JourneyControl
from engine.dsl.models import Journey, SegmentEntry
from engine.dsl.policy import Policy
from engine.dsl.tiers import Tiers
from engine.services.enroll import Enroller
from engine.services.segments import find_segment, iter_members
from engine.store import Store
from engine.store.tables import enrollments
from engine.workflow.segment_entry import (
    PAGE_SIZE,
    EnterPageInput,
    EnterPageResult,
    SegmentEntryInput,
)

log = structlog.get_logger(__name__)

PREFIX = "segment-entry:"
JITTER = timedelta(seconds=30)
PAGES_PER_ATTEMPT = 10


def schedule_id(journey_id: str) -> str:
    return f"{PREFIX}{journey_id}"


async def sync_schedules(
    client: Client,
    store: Store,
    policy: Policy,
    *,
    journeys_dir: Path,
    task_queue: str,
    rules: Tiers | None = None,
    page_size: int = PAGE_SIZE,
    jitter: timedelta = JITTER,
) -> list[str]:
    """Create or update the schedule of every deployed segment-entry journey; delete the
    schedules of journeys that no longer have one. Returns the ids of the schedules kept.

    Segments are read from ``journeys_dir/segments/<id>.yaml`` (DslError if one is missing or
    broken: then no schedule is changed).
    """
    wanted: dict[str, Schedule] = {}
    controls = await store.journey_controls()
    for version in await store.latest_versions():
        journey = Journey.model_validate(version.definition)
        entry = journey.entry
        if not isinstance(entry, SegmentEntry) or entry.schedule is None:
            continue
        segment = find_segment(journeys_dir, entry.segment)
        wanted[schedule_id(journey.id)] = Schedule(
            action=ScheduleActionStartWorkflow(
                "SegmentEntryWorkflow",
                SegmentEntryInput(
                    journey_id=journey.id,
                    segment=segment,
                    rules=rules or Tiers(),
                    page_size=page_size,
                ),
                id=schedule_id(journey.id),
                task_queue=task_queue,
                static_summary=f"segment {segment.id} -> {journey.id}",
            ),
            spec=ScheduleSpec(
                cron_expressions=[entry.schedule],
                time_zone_name=policy.timezone,
                jitter=jitter,
            ),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            state=schedule_state(controls.get(journey.id)),
        )
    for sid, schedule in wanted.items():
        try:
            await client.create_schedule(sid, schedule)
            log.info("schedule_created", schedule_id=sid)
        except ScheduleAlreadyRunningError:
            await client.get_schedule_handle(sid).update(_replace_with(schedule))
            log.info("schedule_updated", schedule_id=sid)
    async for listed in await client.list_schedules():
        if listed.id.startswith(PREFIX) and listed.id not in wanted:
            await client.get_schedule_handle(listed.id).delete()
            log.info("schedule_deleted", schedule_id=listed.id)
    return sorted(wanted)


def schedule_state(control: JourneyControl | None) -> ScheduleState:
    """A journey an operator paused or stopped keeps its schedule paused, with the reason."""
    if control is None or control.state == "active":
        return ScheduleState()
    note = f"journey {control.state} by {control.changed_by}"
    return ScheduleState(paused=True, note=note + (f": {control.reason}" if control.reason else ""))


def _replace_with(schedule: Schedule) -> Callable[[ScheduleUpdateInput], ScheduleUpdate]:
    def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    return update


class SegmentEntryActivities:
    """The activity of `SegmentEntryWorkflow`; register ``all()`` on the worker that polls the
    schedules' task queue."""

    def __init__(
        self, store: Store, enroller: Enroller, *, pages_per_attempt: int = PAGES_PER_ATTEMPT
    ) -> None:
        self._store = store
        self._enroller = enroller
        self._pages = pages_per_attempt

    def all(self) -> list[Callable[..., Any]]:
        return [self.enter_segment_page]

    @activity.defn(name="enter_segment_page")
    async def enter_segment_page(self, input: EnterPageInput) -> EnterPageResult:
        """Enter up to a few pages of members after ``input.after``; say where it stopped."""
        after = input.after
        counts: Counter[str] = Counter()
        details = activity.info().heartbeat_details
        if details:
            # A retried attempt: resume after the last page the previous attempt finished.
            progress = details[0]
            after, counts = progress["after"], Counter(progress["counts"])
        if input.version is not None:
            version = await self._store.get_version(input.journey_id, input.version)
        else:
            latest = await self._store.latest_version(input.journey_id)
            if latest is None:
                log.warning("segment_entry_not_deployed", journey_id=input.journey_id)
                return EnterPageResult(version=None, after=after, done=True)
            version = latest
        pages = 0
        async for page in iter_members(
            self._store,
            input.segment.condition,
            input.now,
            rules=input.rules,
            page_size=input.page_size,
            after=after,
        ):
            fresh = await self._not_entered_since(input.journey_id, page, input.now)
            counts["already_entered"] += len(page) - len(fresh)
            if fresh:
                report = await self._enroller.enroll(version, fresh, input.now)
                counts.update(report.counts)
            after = page[-1]
            pages += 1
            activity.heartbeat({"after": after, "counts": dict(counts)})
            if pages >= self._pages:
                return EnterPageResult(
                    version=version.version, after=after, done=False, counts=dict(counts)
                )
        log.info(
            "segment_entered",
            journey_id=input.journey_id,
            segment_id=input.segment.id,
            **{k: v for k, v in counts.items() if v},
        )
        return EnterPageResult(version=version.version, after=after, done=True, counts=dict(counts))

    async def _not_entered_since(
        self, journey_id: str, page: Sequence[str], now: datetime
    ) -> list[str]:
        query = select(enrollments.c.profile_id).where(
            enrollments.c.journey_id == journey_id,
            enrollments.c.profile_id.in_(page),
            enrollments.c.entered_at >= now,
        )
        async with self._store.engine.connect() as conn:
            entered = set((await conn.execute(query)).scalars())
        return [pid for pid in page if pid not in entered]
