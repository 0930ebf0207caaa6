"""Rehearsing a journey before launch (``journey simulate``): one person's timeline, or a
forecast for a sample of a segment.

The real workflow and activities run in a :class:`Sandbox` the caller provides (the real worker
on Temporal's time-skipping server, a throwaway Redis with the real contact policy, a throwaway
SQLite store, a recording connector). The people come from the real store, which is only read:
their profiles, consent, the events the journey's conditions need and their last enrollment in
the journey (so re-entry rules answer as they would) are copied into the sandbox's store.

    rehearsal = await rehearse_person(real, sandbox, plan, "p00042", days=14, events=[...])
    forecast = await forecast_segment(real, sandbox, plan, members, sample=1000, days=14)

Errors::

    SimulationInputError   bad input, found before anything runs: an unknown person, journey or
                           segment; an injected event that does not read NAME@+DURATION
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from engine.caps.checker import CapChecker, CapRequest
from engine.conditions.context import event_needs, needs_cuts
from engine.domain import Delivery, Enrollment, Event, JourneyVersion, Profile
from engine.dsl.conditions import AnyCondition, Condition
from engine.dsl.durations import format_duration, parse_duration
from engine.dsl.models import (
    BranchStep,
    Cap,
    Else,
    ExitStep,
    Journey,
    SendStep,
    SplitStep,
    UpdateStep,
    WaitForStep,
    WaitStep,
)
from engine.dsl.tiers import Tiers
from engine.services.enroll import Enroller, Outcome
from engine.store import Store
from engine.store.core import chunks
from engine.store.errors import VersionNotFound
from engine.store.tables import deliveries, enrollments, events, subscriptions
from engine.temporal import run_chain, workflow_id
from engine.workflow.messages import EventSignal, RunResult, RunState

DAY = timedelta(days=1)
TOUCH_HISTORY = timedelta(days=90)
"""How far back the people's sends are counted into the rehearsal's caps (longer than any
window a contact policy sensibly uses)."""


class SimulationInputError(ValueError):
    """Bad input to a simulation; the message is one line naming what is wrong."""


# -- input -------------------------------------------------------------------------------------

_EVENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_.:-]*)@\+(?P<offset>.+)$")


@dataclass(frozen=True)
class InjectedEvent:
    """An event the rehearsal makes happen ``offset`` after the person enters."""

    name: str
    offset: timedelta

    @classmethod
    def parse(cls, text: str) -> InjectedEvent:
        """``order_paid@+3d`` (durations as in journeys: 90s, 30m, 1h, 2d, 1w, 1d12h).

        Raises SimulationInputError naming the event and the expected form."""
        found = _EVENT.match(text.strip())
        problem = "expected NAME@+DURATION, e.g. order_paid@+3d"
        if found is None:
            raise SimulationInputError(f"malformed --event {text!r}: {problem}")
        try:
            offset = parse_duration(found["offset"])
        except ValueError:
            raise SimulationInputError(
                f"malformed --event {text!r}: bad offset {found['offset']!r}; {problem}"
            ) from None
        return cls(found["name"], offset)


@dataclass(frozen=True)
class JourneyPlan:
    """The journey to rehearse: its definition, compiled templates, and how to name it."""

    journey: Journey
    templates: dict[str, dict[str, str]]
    label: str
    """``v3`` for a deployed version, the file's path for one not deployed yet."""

    @classmethod
    def of_version(cls, version: JourneyVersion) -> JourneyPlan:
        journey = Journey.model_validate(version.definition)
        return cls(journey, dict(version.templates), f"v{version.version}")


@dataclass(frozen=True)
class Sandbox:
    """Where a rehearsal runs: everything here is thrown away afterwards.

    ``advance`` moves the time-skipping server's clock forward (firing the timers due);
    ``now`` reads that clock. A worker polls ``task_queue`` with the real activities over
    ``store``, the real cap service over a throwaway Redis, and a recording connector whose
    messages are in ``recorded``.
    """

    store: Store
    client: Client
    task_queue: str
    advance: Callable[[timedelta], Awaitable[None]]
    now: Callable[[], Awaitable[datetime]]
    recorded: Callable[[], int]
    """How many messages the recording connector holds (none left the machine)."""
    touches: CapChecker | None = None
    """The cap service over the same Redis without quiet hours and arbitration: the people's
    past sends are counted through it as they were counted then."""


# -- copying the people in -------------------------------------------------------------------


def _conditions(journey: Journey) -> list[Condition]:
    return [
        case.when
        for step in journey.steps
        if isinstance(step, BranchStep)
        for case in step.branch
        if not isinstance(case, Else)
    ]


async def copy_people(
    real: Store,
    sandbox: Store,
    journey: Journey,
    profile_ids: Sequence[str],
    *,
    tiers: Tiers | None = None,
) -> dict[str, Profile]:
    """Copy what a run of ``journey`` reads about these people from ``real`` (only read) into
    ``sandbox``: profiles, consent, the events the conditions name, the last enrollment in the
    journey. Returns the profiles found, by the id asked for (merged ids: the survivor)."""
    rules = tiers or Tiers()
    found = await real.get_profiles(profile_ids)
    people = sorted({p.id for p in found.values()})
    await sandbox.upsert_profiles(list({p.id: p for p in found.values()}.values()))
    conditions = _conditions(journey)
    needs = event_needs(AnyCondition(any=conditions), rules) if conditions else {}
    async with real.engine.connect() as conn:
        copied: list[Event] = []
        consent: list[Any] = []
        last: dict[str, Enrollment] = {}
        for chunk in chunks(people):
            if needs:
                rows = await conn.execute(
                    select(events).where(
                        events.c.profile_id.in_(chunk), events.c.name.in_(list(needs))
                    )
                )
                copied += [_event(row) for row in rows]
            consent += list(
                await conn.execute(
                    select(subscriptions).where(subscriptions.c.profile_id.in_(chunk))
                )
            )
            ledger = await conn.execute(
                select(enrollments)
                .where(enrollments.c.journey_id == journey.id, enrollments.c.profile_id.in_(chunk))
                .order_by(enrollments.c.entered_at)
            )
            for row in ledger:
                last[row.profile_id] = _enrollment(row)
        if conditions and needs_cuts(AnyCondition(any=conditions), rules):
            # RFM scores rank the person among every buyer: bring every purchase along.
            rows = await conn.execute(select(events).where(events.c.name == rules.purchase.event))
            buyers = [_event(row) for row in rows]
            copied += buyers
            others = {e.profile_id for e in buyers} - set(people)
            await sandbox.upsert_profiles(list((await real.get_profiles(others)).values()))
    await sandbox.record_events(copied)
    for row in consent:
        await sandbox.set_subscription(
            row.profile_id, row.channel, row.status, row.source, row.updated_at
        )
    for enrollment in last.values():
        await sandbox.create_enrollment(enrollment)
    return found


def _event(row: Any) -> Event:
    return Event(row.event_id, row.profile_id, row.name, row.occurred_at, dict(row.properties))


def _enrollment(row: Any) -> Enrollment:
    return Enrollment(
        id=row.id,
        journey_id=row.journey_id,
        journey_version=row.journey_version,
        profile_id=row.profile_id,
        entered_at=row.entered_at,
        status=row.status,
        ended_at=row.ended_at,
        exit_step=row.exit_step,
        path=tuple(row.path),
        variants=dict(row.variants),
    )


async def install(sandbox: Store, plan: JourneyPlan, now: datetime) -> JourneyVersion:
    """Deploy the plan's journey into the sandbox's store."""
    version, _ = await sandbox.deploy_version(
        plan.journey.id,
        plan.journey.content_hash(),
        plan.journey.model_dump(mode="json", by_alias=True),
        plan.templates,
        plan.label,
        now,
    )
    return version


async def count_past_touches(
    real: Store, sandbox: Sandbox, people: Iterable[Profile], now: datetime
) -> int:
    """Count the people's sends of the last `TOUCH_HISTORY` (the real delivery log) in the
    sandbox's caps, so a rehearsal starts from the touches they really had. Returns how many."""
    if sandbox.touches is None:
        return 0
    zones = {p.id: p.timezone for p in people}
    rows: list[Any] = []
    async with real.engine.connect() as conn:
        for chunk in chunks(sorted(zones)):
            rows += list(
                await conn.execute(
                    select(deliveries).where(
                        deliveries.c.profile_id.in_(chunk),
                        deliveries.c.status == "sent",
                        deliveries.c.created_at >= now - TOUCH_HISTORY,
                    )
                )
            )
    scopes: dict[tuple[str, int], tuple[tuple[Cap, ...], tuple[str, ...]]] = {}
    for row in sorted(rows, key=lambda r: r.created_at):
        key = (row.journey_id, row.journey_version)
        if key not in scopes:
            try:
                journey = Journey.model_validate((await real.get_version(*key)).definition)
                scopes[key] = (tuple(journey.caps), tuple(journey.tags))
            except VersionNotFound:
                scopes[key] = ((), ())
        caps, tags = scopes[key]
        await sandbox.touches.reserve(
            CapRequest(
                send_key=f"history:{row.send_key}",
                profile_id=row.profile_id,
                journey_id=row.journey_id,
                channel=row.channel,
                priority=0,
                at=row.created_at,
                timezone=zones[row.profile_id],
                journey_caps=caps,
                tags=tags,
                transactional=row.category == "transactional",
            )
        )
    return len(rows)


# -- one person ------------------------------------------------------------------------------

EntryKind = Literal["entered", "step", "send", "event", "end", "waiting", "not_entered"]


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: EntryKind
    text: str
    step: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    """For sends: status, reason, channel, template, detail; for the end: status, reason."""


@dataclass(frozen=True)
class PersonRehearsal:
    journey_id: str
    label: str
    profile_id: str
    timezone: str
    start: datetime
    until: datetime
    outcome: Outcome
    """started, or why the person did not enter (reentry_blocked, live)."""
    status: str
    """How the run stands at the end: completed / converted / exited, active (still in it at
    the horizon), or not_entered."""
    timeline: list[TimelineEntry]
    messages_recorded: int
    past_touches: int = 0
    """The person's sends before the rehearsal counted into its caps."""


async def rehearse_person(
    real: Store,
    sandbox: Sandbox,
    plan: JourneyPlan,
    profile_id: str,
    *,
    days: int,
    events_: Sequence[InjectedEvent] = (),
    tiers: Tiers | None = None,
) -> PersonRehearsal:
    """Enter one person now (sandbox time) and run ``days`` of the journey, injecting
    ``events_`` at their offsets. Raises SimulationInputError for an unknown person."""
    found = await copy_people(real, sandbox.store, plan.journey, [profile_id], tiers=tiers)
    if profile_id not in found:
        raise SimulationInputError(f"unknown person {profile_id!r}: no such profile in the store")
    profile = found[profile_id]
    start = await sandbox.now()
    touches = await count_past_touches(real, sandbox, [profile], start)
    version = await install(sandbox.store, plan, start)
    enroller = Enroller(sandbox.store, sandbox.client, sandbox.task_queue)
    report = await enroller.enroll(version, [profile.id], start)
    outcome = report.outcomes[profile.id]
    until = start + days * DAY
    rehearsal = PersonRehearsal(
        journey_id=plan.journey.id,
        label=plan.label,
        profile_id=profile.id,
        timezone=profile.timezone,
        start=start,
        until=until,
        outcome=outcome,
        status="not_entered",
        timeline=[],
        messages_recorded=0,
        past_touches=touches,
    )
    if outcome != "started":
        why = await _not_entered(sandbox.store, plan.journey, profile.id, outcome)
        return replace(rehearsal, timeline=[TimelineEntry(start, "not_entered", why)])
    handle = sandbox.client.get_workflow_handle(workflow_id(plan.journey.id, profile.id))
    run_id = (await handle.describe()).run_id
    injected: list[TimelineEntry] = []
    for number, event in enumerate(sorted(events_, key=lambda e: e.offset), start=1):
        if event.offset >= days * DAY:
            raise SimulationInputError(f"--event {event.name} at +{event.offset} is past --days")
        at = start + event.offset
        await _advance_to(sandbox, at)
        injected.append(await _inject(sandbox, profile.id, plan.journey, event, number, at))
    await _advance_to(sandbox, until)
    # A long or looping journey continues as new: the state is the last run's, the timers
    # every run's.
    runs = await run_chain(sandbox.client, handle.id, run_id)
    run = sandbox.client.get_workflow_handle(handle.id, run_id=runs[-1][0])
    state: RunState = await run.query("state", result_type=RunState)
    history = [e for _, h in runs for e in h.events]
    # The run started now (the person's earlier enrollments were copied in for re-entry).
    enrollment = max(
        (e for e in await sandbox.store.enrollments(plan.journey.id) if e.profile_id == profile.id),
        key=lambda e: e.entered_at,
    )
    reason = None
    if enrollment.status != "active":
        ended = sandbox.client.get_workflow_handle(handle.id, run_id=run_id, result_type=RunResult)
        reason = (await ended.result()).reason
    deliveries = await sandbox.store.deliveries(profile_id=profile.id)
    timeline = _timeline(plan.journey, enrollment, state, reason, deliveries, history, until)
    timeline = sorted(timeline + injected, key=lambda entry: entry.at)
    return replace(
        rehearsal,
        status=enrollment.status,
        timeline=timeline,
        messages_recorded=sandbox.recorded(),
    )


async def _advance_to(sandbox: Sandbox, at: datetime) -> None:
    now = await sandbox.now()
    if at > now:
        await sandbox.advance(at - now)


async def _inject(
    sandbox: Sandbox,
    profile_id: str,
    journey: Journey,
    event: InjectedEvent,
    number: int,
    at: datetime,
) -> TimelineEntry:
    """Record the event (as of ``at``) in the sandbox's store and signal the person's run, if
    it is still live."""
    event_id = f"simulated-{number}-{uuid.uuid4().hex[:8]}"
    await sandbox.store.record_events([Event(event_id, profile_id, event.name, at)])
    handle = sandbox.client.get_workflow_handle(workflow_id(journey.id, profile_id))
    reached = True
    try:
        await handle.signal(
            "event", EventSignal(name=event.name, event_id=event_id, occurred_at=at)
        )
    except RPCError:
        reached = False  # the run already ended: the event is only recorded
    listens = event.name in journey.listens_for()
    note = "" if reached and listens else " (the journey does not listen for it)"
    if not reached:
        note = " (the run had ended)"
    return TimelineEntry(
        at, "event", f"event {event.name} (injected){note}", data={"name": event.name}
    )


async def _not_entered(store: Store, journey: Journey, profile_id: str, outcome: Outcome) -> str:
    last = await store.last_enrollment(journey.id, profile_id)
    if outcome == "live":
        return "not entered: the person is in this journey now (a live run)"
    if last is not None:
        rule = journey.reentry.policy
        cooldown = journey.reentry.cooldown
        detail = f"reentry {rule}" + (f", cooldown {format_duration(cooldown)}" if cooldown else "")
        return f"not entered: {detail}; last entered {last.entered_at:%Y-%m-%d %H:%M} UTC"
    return f"not entered: {outcome}"


@dataclass(frozen=True)
class _Timer:
    started: datetime
    ended: datetime | None
    fired: bool
    summary: str


def _timers(history: Sequence[HistoryEvent]) -> list[_Timer]:
    """The run's durable timers in start order: when each started and fired or was cancelled."""
    started: dict[str, tuple[datetime, str]] = {}
    ends: dict[str, tuple[datetime, bool]] = {}
    for event in history:
        at = event.event_time.ToDatetime(tzinfo=UTC)
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            summary = event.user_metadata.summary.data.decode("utf-8", "replace").strip('"')
            started[event.timer_started_event_attributes.timer_id] = (at, summary)
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            ends[event.timer_fired_event_attributes.timer_id] = (at, True)
        elif event.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
            ends[event.timer_canceled_event_attributes.timer_id] = (at, False)
    timers = []
    for timer_id, (at, summary) in started.items():
        end = ends.get(timer_id)
        timers.append(_Timer(at, end[0] if end else None, bool(end and end[1]), summary))
    return sorted(timers, key=lambda t: t.started)


def _timeline(
    journey: Journey,
    enrollment: Enrollment,
    state: RunState,
    reason: str | None,
    deliveries: Sequence[Delivery],
    history: Sequence[HistoryEvent],
    until: datetime,
) -> list[TimelineEntry]:
    """Every step of the run with its time: sends from the delivery log, waits from the run's
    timers, the rest at the moment the step before it ended."""
    path = list(enrollment.path) if enrollment.status != "active" else list(state.path)
    timers = _timers(history)
    entries = [TimelineEntry(enrollment.entered_at, "entered", "entered the journey")]
    cursor = enrollment.entered_at
    visits: Counter[str] = Counter()
    for index, step_id in enumerate(path):
        step = journey.step(step_id)
        visits[step_id] += 1
        following = path[index + 1] if index + 1 < len(path) else None
        if isinstance(step, WaitStep | WaitForStep):
            mine = _timers_of(timers, step_id, cursor)
            began = mine[0].started if mine else cursor
            ended = mine[-1].ended if mine else None
            if isinstance(step, WaitStep):
                length = (
                    format_duration(step.wait)
                    if isinstance(step.wait, timedelta)
                    else f"until {step.wait.until}"
                )
                text = f"wait {length}"
            else:
                spec = step.wait_for
                text = f"wait for {spec.event} (timeout {format_duration(spec.timeout)})"
                if ended is not None and following is not None:
                    text += "; timed out" if mine[-1].fired else f"; {spec.event} arrived"
            entries.append(TimelineEntry(began, "step", text, step_id))
            if ended is None:
                break
            cursor = ended
        elif isinstance(step, SendStep):
            base = f"{enrollment.id}:{step_id}:{visits[step_id]}"
            attempts = sorted(
                (d for d in deliveries if d.send_key == base or d.send_key.startswith(base + ":")),
                key=lambda d: d.created_at,
            )
            send = step.send
            if not attempts or attempts[0].created_at - cursor >= timedelta(seconds=1):
                # Arbitration: the send claimed a slot and waits out the window before asking
                # again (with the same key, so the wait leaves no delivery row).
                text = f"send {send.channel} ({send.template}): waits out the arbitration window"
                entries.append(TimelineEntry(cursor, "send", text, step_id))
            for delivery in attempts:
                entries.append(_send_entry(delivery))
                cursor = delivery.created_at
        elif isinstance(step, BranchStep):
            target = f"-> {following}" if following else "no case matched"
            entries.append(TimelineEntry(cursor, "step", f"branch {target}", step_id))
        elif isinstance(step, SplitStep):
            variant = enrollment.variants.get(step_id) or state.variants.get(step_id, "?")
            text = f"split: variant {variant}" + (f" -> {following}" if following else "")
            entries.append(TimelineEntry(cursor, "step", text, step_id, {"variant": variant}))
        elif isinstance(step, UpdateStep):
            entries.append(TimelineEntry(cursor, "step", "update the profile", step_id))
        elif isinstance(step, ExitStep):
            entries.append(TimelineEntry(cursor, "step", "exit", step_id))
    if enrollment.status == "active":
        where = state.step or "?"
        waiting = f", waiting for {state.waiting_for}" if state.waiting_for else ""
        text = f"still in the journey at the horizon: step {where}{waiting}"
        entries.append(TimelineEntry(until, "waiting", text, state.step))
    else:
        ended = enrollment.ended_at or until
        why = ""
        if enrollment.status == "converted":
            why = f" (goal {reason})"
        elif reason:
            why = f" ({reason})"
        text = f"end: {enrollment.status}{why} at step {enrollment.exit_step}"
        data = {"status": enrollment.status, "exit_step": enrollment.exit_step, "reason": reason}
        entries.append(TimelineEntry(ended, "end", text, enrollment.exit_step, data))
    return entries


def _timers_of(timers: Sequence[_Timer], step_id: str, cursor: datetime) -> list[_Timer]:
    """The timers of a resting step that began at ``cursor``: the first one started since, and
    those right after it for the same step (a long wait may take several)."""
    later = [t for t in timers if t.started >= cursor]
    if not later:
        return []
    mine = [later[0]]
    for timer in later[1:]:
        if not timer.summary.startswith(f"{step_id}:") or mine[-1].ended != timer.started:
            break
        mine.append(timer)
    return mine


_OUTCOME = {
    "sent": "sent",
    "suppressed": "not sent",
    "deferred": "held",
    "expired": "not sent (held past its expiry)",
    "failed": "failed",
}


def _send_entry(delivery: Delivery) -> TimelineEntry:
    text = f"send {delivery.channel} ({delivery.template}): {_OUTCOME[delivery.status]}"
    detail = dict(delivery.detail)
    if delivery.reason:
        text += f" — {delivery.reason}"
        if "count" in detail and "max" in detail:
            text += f" ({detail['count']} of {detail['max']} used)"
    retry_at = detail.get("retry_at")
    if retry_at and delivery.status == "deferred":
        text += f"; retry at {retry_at}"
    data = {
        "status": delivery.status,
        "reason": delivery.reason,
        "channel": delivery.channel,
        "template": delivery.template,
        "decision": decision(delivery),
        "detail": detail,
    }
    return TimelineEntry(delivery.created_at, "send", text, delivery.step_id, data)


Decision = Literal["sent", "deferred", "capped", "dropped", "failed"]


def decision(delivery: Delivery) -> Decision:
    """What a send attempt came to: sent; deferred (held for later: quiet hours or a cap);
    capped (refused for good by a frequency cap); dropped (refused for good otherwise: quiet
    hours with ``drop``, arbitration lost, no consent, no address); failed."""
    if delivery.status in ("sent", "deferred", "failed"):
        return delivery.status
    return "capped" if "max" in delivery.detail else "dropped"


# -- a segment sample ------------------------------------------------------------------------


@dataclass(frozen=True)
class DayCounts:
    day: int
    """1 for the first 24 hours from the start, 2 for the next..."""
    date: str
    """The date the day starts on, in the policy's timezone (YYYY-MM-DD)."""
    counts: dict[Decision, int]


@dataclass(frozen=True)
class Forecast:
    journey_id: str
    label: str
    members: int
    """Members of the segment now."""
    sample: int
    seed: int
    start: datetime
    days: int
    entered: dict[str, int]
    """Enroll outcomes: started (would enter), reentry_blocked, live, missing."""
    per_day: list[DayCounts]
    totals: dict[Decision, int]
    reasons: dict[str, int]
    """Why sends were held or refused: rule or reason -> attempts."""
    statuses: dict[str, int]
    """How the runs stand at the horizon: active, completed, converted, exited."""
    past_touches: int = 0
    """The sample's sends before the rehearsal counted into its caps."""


def sample_members(members: Sequence[str], size: int, seed: int) -> list[str]:
    """``size`` members chosen with ``seed`` (the same seed, the same people), in id order."""
    if size >= len(members):
        return sorted(members)
    return sorted(random.Random(seed).sample(list(members), size))


async def forecast_segment(
    real: Store,
    sandbox: Sandbox,
    plan: JourneyPlan,
    members: Sequence[str],
    *,
    sample: int,
    seed: int,
    days: int,
    timezone: str,
    tiers: Tiers | None = None,
) -> Forecast:
    """Enter a seeded sample of ``members`` now (sandbox time), run ``days`` of the journey
    and count the send attempts by decision per simulated day (24 hours from the start, dated
    in ``timezone``)."""
    chosen = sample_members(members, sample, seed)
    found = await copy_people(real, sandbox.store, plan.journey, chosen, tiers=tiers)
    start = await sandbox.now()
    touches = await count_past_touches(real, sandbox, found.values(), start)
    version = await install(sandbox.store, plan, start)
    enroller = Enroller(sandbox.store, sandbox.client, sandbox.task_queue)
    report = await enroller.enroll(version, chosen, start)
    until = start + days * DAY
    await _advance_to(sandbox, until)
    runs = [r for r in await sandbox.store.enrollments(plan.journey.id) if r.entered_at >= start]
    await _settle(sandbox, plan.journey.id, [r.profile_id for r in runs if r.status == "active"])
    runs = [r for r in await sandbox.store.enrollments(plan.journey.id) if r.entered_at >= start]
    deliveries = await sandbox.store.deliveries(journey_id=plan.journey.id)
    zone = ZoneInfo(timezone)
    per_day = [
        DayCounts(day, f"{(start + (day - 1) * DAY).astimezone(zone):%Y-%m-%d}", _zero())
        for day in range(1, days + 1)
    ]
    reasons: Counter[str] = Counter()
    for delivery in deliveries:
        if not start <= delivery.created_at < until:
            continue
        kind = decision(delivery)
        per_day[(delivery.created_at - start) // DAY].counts[kind] += 1
        if kind != "sent" and delivery.reason:
            reasons[delivery.reason] += 1
    totals = _zero()
    for counts in per_day:
        for kind, n in counts.counts.items():
            totals[kind] += n
    return Forecast(
        plan.journey.id,
        plan.label,
        len(members),
        len(chosen),
        seed,
        start,
        days,
        dict(report.counts),
        per_day,
        totals,
        dict(reasons.most_common()),
        dict(Counter(r.status for r in runs)),
        touches,
    )


def _zero() -> dict[Decision, int]:
    return {"sent": 0, "deferred": 0, "capped": 0, "dropped": 0, "failed": 0}


async def _settle(
    sandbox: Sandbox, journey_id: str, profile_ids: Iterable[str], within: float = 30.0
) -> None:
    """Wait until the work due at the horizon is done: no live run has a workflow task or an
    activity pending."""
    deadline = asyncio.get_running_loop().time() + within
    pending = list(profile_ids)
    while pending and asyncio.get_running_loop().time() < deadline:
        busy = await asyncio.gather(*(_busy(sandbox, journey_id, pid) for pid in pending))
        pending = [pid for pid, b in zip(pending, busy, strict=True) if b]
        if pending:
            await asyncio.sleep(0.05)


async def _busy(sandbox: Sandbox, journey_id: str, profile_id: str) -> bool:
    handle = sandbox.client.get_workflow_handle(workflow_id(journey_id, profile_id))
    description = await handle.describe()
    if description.status != WorkflowExecutionStatus.RUNNING:
        return False
    raw = description.raw_description
    return bool(raw.pending_activities) or raw.HasField("pending_workflow_task")
