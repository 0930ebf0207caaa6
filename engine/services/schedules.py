"""Segment entry on a schedule: one Temporal Schedule per deployed segment-entry journey.

    ids = await sync_schedules(client, store, policy, journeys_dir=Path("journeys"),
                               task_queue="journeys", rules=load_tiers(...))

After a deploy, `sync_schedules` creates or updates schedule ``segment-entry:<journey_id>`` for
the latest version of every journey whose entry is ``{segment: ..., schedule: CRON}``: the cron
as read by `engine.dsl.cron` (structured calendars, so the server never reads the text its own
way), in the policy's timezone, overlap SKIP (an evaluation still running makes the next one
skip), a little jitter so that many journeys at 10:00 do not all hit the store in the same
second. Its action starts `SegmentEntryWorkflow` with a snapshot of the segment and the tier
rules; schedules of journeys that no longer enter by segment are deleted. Journeys about to be
deployed can be given (``deploying``): they count as the latest versions, so a deploy creates
the schedules before it stores anything (`engine.services.deploy`). Temporal refusing a
schedule raises `ScheduleSyncError`, one line naming the schedule and the server's reason.

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
from pydantic import ValidationError
from sqlalchemy import select
from temporalio import activity
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError

from engine.domain import JourneyControl
from engine.dsl.cron import Calendar, parse_cron
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


class ScheduleSyncError(Exception):
    """Temporal refused a schedule, or a stored version's schedule cannot be read; one line."""


def schedule_id(journey_id: str) -> str:
    return f"{PREFIX}{journey_id}"


def calendar_specs(cron: str) -> list[ScheduleCalendarSpec]:
    """The Temporal calendars of a journey's ``schedule`` (ValueError if it is not valid)."""
    return [_calendar_spec(calendar) for calendar in parse_cron(cron).calendars]


def _calendar_spec(calendar: Calendar) -> ScheduleCalendarSpec:
    return ScheduleCalendarSpec(
        second=(ScheduleRange(0),),
        minute=_ranges(calendar.minute),
        hour=_ranges(calendar.hour),
        day_of_month=_ranges(calendar.day_of_month),
        month=_ranges(calendar.month),
        day_of_week=_ranges(calendar.day_of_week),
    )


def _ranges(values: Sequence[int]) -> tuple[ScheduleRange, ...]:
    """Sorted values as runs of consecutive numbers: (1, 2, 3, 7) -> 1-3, 7."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return tuple(ScheduleRange(start, end) for start, end in runs)


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
    deploying: Sequence[Journey] = (),
) -> list[str]:
    """Create or update the schedule of every deployed segment-entry journey (``deploying``
    ones taken as deployed); delete the schedules of journeys that no longer have one. Returns
    the ids of the schedules kept.

    Segments are read from ``journeys_dir/segments/<id>.yaml`` (DslError if one is missing or
    broken: then no schedule is changed). Raises ScheduleSyncError when Temporal refuses one
    (the schedules before it in id order are changed already).
    """
    latest = {journey.id: journey for journey in deploying}
    stored = await store.latest_versions()
    versions = {v.journey_id: v.version for v in stored}
    for version in stored:
        if version.journey_id in latest:
            continue
        try:
            latest[version.journey_id] = Journey.model_validate(version.definition)
        except ValidationError as exc:
            raise _stale(version.journey_id, version.version, exc.errors()[0]["msg"]) from None
    wanted: dict[str, Schedule] = {}
    controls = await store.journey_controls()
    for journey in sorted(latest.values(), key=lambda j: j.id):
        entry = journey.entry
        if not isinstance(entry, SegmentEntry) or entry.schedule is None:
            continue
        try:
            calendars = calendar_specs(entry.schedule)
        except ValueError as exc:
            # Stored by a release that checked less (a cron Temporal reads another way).
            raise _stale(journey.id, versions.get(journey.id), str(exc)) from None
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
                calendars=calendars,
                time_zone_name=policy.timezone,
                jitter=jitter,
            ),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            state=schedule_state(controls.get(journey.id)),
        )
    for sid, schedule in wanted.items():
        try:
            try:
                await client.create_schedule(sid, schedule)
                log.info("schedule_created", schedule_id=sid)
            except ScheduleAlreadyRunningError:
                await client.get_schedule_handle(sid).update(_replace_with(schedule))
                log.info("schedule_updated", schedule_id=sid)
        except RPCError as exc:
            raise _refused(sid, exc) from None
    try:
        async for listed in await client.list_schedules():
            if listed.id.startswith(PREFIX) and listed.id not in wanted:
                await client.get_schedule_handle(listed.id).delete()
                log.info("schedule_deleted", schedule_id=listed.id)
    except RPCError as exc:
        raise _refused(PREFIX + "*", exc) from None
    return sorted(wanted)


def _stale(journey_id: str, version: int | None, reason: str) -> ScheduleSyncError:
    return ScheduleSyncError(
        f"journey '{journey_id}' v{version} is deployed with a schedule this release refuses "
        f"({reason}); deploy a fixed version of it"
    )


def _refused(sid: str, exc: RPCError) -> ScheduleSyncError:
    log.warning("schedule_refused", schedule_id=sid, status=exc.status.name)
    return ScheduleSyncError(f"Temporal refused schedule {sid} ({exc.status.name}: {exc.message})")


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
