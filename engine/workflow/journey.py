"""`JourneyWorkflow`: interprets one pinned journey version for one person.

History cost is kept near a hand-written workflow with the same timers and activities: transient
steps (branch, split, update) cost no timer; condition reads, profile updates and the final ledger
write are local activities (one marker event each); only resting steps (wait, wait_for, a deferred
send) upsert the `JourneyStep` search attribute, and only when it changes (the enroller starts a
run with its first rest already shown). Goal and exit_on events interrupt any wait at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from zoneinfo import ZoneInfo

    from engine.domain import EnrollmentStatus
    from engine.dsl.models import (
        BranchStep,
        Else,
        ExitStep,
        Journey,
        SendStep,
        SplitStep,
        Step,
        UpdateStep,
        WaitFor,
        WaitForStep,
        WaitStep,
        WaitUntil,
    )
    from engine.localtime import next_wall_time
    from engine.workflow.messages import (
        BranchInput,
        BranchResult,
        ControlSignal,
        EventSignal,
        FinishInput,
        GiveUpInput,
        JourneyInput,
        RunCarry,
        RunResult,
        RunState,
        SendInput,
        SendResult,
        UpdateInput,
    )

JOURNEY_STEP = SearchAttributeKey.for_keyword("JourneyStep")
PAUSED = "paused"
"""The ``JourneyStep`` of a run held by an operator's pause."""
SPLIT_BUCKETS = 10_000

# Patches (`workflow.patched`). Each is asked only when the new rule decides differently from
# the old one, so runs where the two agree record no marker and cost no history event (a
# marker and the SDK's change-version attribute, two events, where they differ).
WAIT_UNTIL_ELAPSED = "wait-until-elapsed-on-run-clock"
"""``wait: {until}`` is the elapsed time (UTC) to the next showing of that time on the person's
clock, counted from the run's own clock; it was the wall-clock difference from workflow time."""
GOAL_BY_EVENT_TIME = "goal-by-event-time"
"""A goal event converts when its ``occurred_at`` is in the goal window; it was decided by the
run's clock when the event arrived."""

CONTINUE_AS_NEW = "continue-as-new-bounded"
"""A run whose history reached ``CONTINUE_AS_NEW_AT`` events goes on as a new run of the same
workflow id at its next step; it used to grow for as long as its loop went round."""

CONTINUE_AS_NEW_AT = 2_000
"""History events after which a run continues as new, at the next step boundary (never in the
middle of a send or a wait); also when Temporal suggests it. Well under Temporal's warnings
(10,240 events, 10 MB) and limits (51,200 events, 50 MB): a looping journey's history stays
small and cheap to replay, however long it runs."""
PATH_KEPT = 1_000
"""Steps of the path a continued run keeps in order; older ones are kept once each. Enough
for a year's rehearsal (`journey simulate`, at most 366 days) of a loop with a day or more per
round to keep its whole path, so the timeline shows every round; bounded (about 15 KB in the
continued run's input and in the ledger) however long a run loops."""
SEEN_KEPT = 500
"""Event ids a continued run remembers, the most recent: enough for redelivery and the
events sweep to find nothing new, bounded however many events a person sends."""

_LOCAL = timedelta(seconds=30)
# A send is one provider call (10 s HTTP timeout) plus two store writes; a worker that dies
# mid-send is noticed after this long, so keep it short.
_SEND_TIMEOUT = timedelta(seconds=30)
_SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)
SEND_GIVE_UP = timedelta(days=1)
"""How long one send attempt may keep retrying (a provider, Redis or the store down) before the
run gives it up as failed: a marketing message a day late is stale, and retrying for ever kept a
misconfigured channel's runs open indefinitely."""


def first_rest(journey: Journey) -> str | None:
    """The step whose ``JourneyStep`` a new run can be started with: its first step, when that
    is a wait (where the run would set it in its first workflow task)."""
    first = journey.steps[0]
    return first.id if isinstance(first, WaitStep | WaitForStep) else None


def split_bucket(journey_id: str, step_id: str, profile_id: str) -> int:
    """Sticky bucket in [0, 10000): the same person always lands in the same variant."""
    digest = hashlib.sha256(f"{journey_id}\x1f{step_id}\x1f{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SPLIT_BUCKETS


def pick_variant(step: SplitStep, bucket: int) -> tuple[str, str]:
    """(variant, goto) for ``bucket``: variants own consecutive ranges sized by weight."""
    edge = 0.0
    for variant in step.split:
        edge += variant.weight * SPLIT_BUCKETS / 100
        if bucket < edge:
            return variant.variant, variant.goto
    last = step.split[-1]
    return last.variant, last.goto


@workflow.defn(name="JourneyWorkflow")
class JourneyWorkflow:
    @workflow.init
    def __init__(self, input: JourneyInput) -> None:
        self._input = input
        self._journey = input.journey
        self._ended: tuple[EnrollmentStatus, str] | None = None
        self._received: list[str] = []
        self._waiting_for: str | None = None
        self._until: datetime | None = None
        self._exit_reason: str | None = None
        # What a continued run carries on from the runs before it (`_continue_as_new`).
        carry = input.carry or RunCarry(
            step=self._journey.steps[0].id, visits={}, entered=workflow.now()
        )
        self._carried = input.carry is not None
        self._seen: dict[str, None] = dict.fromkeys(carry.seen)
        """Event ids seen, in arrival order (a dict: a set's order differs between processes)."""
        self._step: str | None = carry.step if self._carried else None
        self._path = list(carry.path)
        self._earlier = list(carry.earlier)
        self._dropped = carry.dropped
        self._variants = dict(carry.variants)
        self._visits = dict(carry.visits)
        self._skipped = carry.skipped
        self._entered = carry.entered
        self._entered_at = input.entered_at or self._entered
        self._paused = carry.paused
        self._runs = carry.runs

    @workflow.signal(name="event")
    def event(self, signal: EventSignal) -> None:
        """A customer event. Goal and exit_on events end the run, even in the middle of a wait."""
        if self._ended is not None or signal.event_id in self._seen:
            return  # delivery is at least once: a repeated event changes nothing
        self._seen[signal.event_id] = None
        goal = self._journey.goal
        if goal and signal.name == goal.event and self._converts(signal):
            self._ended = ("converted", signal.name)
        elif any(e.event == signal.name for e in self._journey.exit_on):
            self._ended = ("exited", signal.name)
        self._received.append(signal.name)

    @workflow.signal(name="control")
    def control(self, signal: ControlSignal) -> None:
        """An operator's pause, resume or stop (``journey pause|resume|stop``)."""
        if self._ended is not None:
            return
        if signal.action == "stop":
            self._ended = ("stopped", signal.reason or "stopped")
        else:
            self._paused = signal.action == "pause"

    @workflow.query(name="state")
    def state(self) -> RunState:
        status: EnrollmentStatus = self._ended[0] if self._ended else "active"
        return RunState(
            journey_id=self._journey.id,
            version=self._input.version,
            step=self._step,
            status=status,
            waiting_for=self._waiting_for,
            until=self._until,
            path=self._full_path(),
            variants=dict(self._variants),
            paused=self._paused,
        )

    @workflow.run
    async def run(self, input: JourneyInput) -> RunResult:
        step_id: str | None = self._step if self._carried else self._journey.steps[0].id
        while step_id is not None and self._ended is None:
            if self._history_full() and workflow.patched(CONTINUE_AS_NEW):
                self._continue_as_new(step_id)
            self._step = step_id
            self._path.append(step_id)
            self._visits[step_id] = self._visits.get(step_id, 0) + 1
            step_id = await self._execute(self._journey.step(step_id))
        status, reason = self._ended or ("completed", self._exit_reason)
        self._waiting_for = self._until = None
        workflow.set_current_details(f"ended: {status} at step {self._step}")
        await workflow.execute_local_activity(
            "finish_run",
            FinishInput(
                enrollment_id=input.enrollment_id,
                status=status,
                exit_step=self._step,
                path=self._full_path(),
                variants=self._variants,
                ended_at=workflow.now(),
                reason=reason,
            ),
            start_to_close_timeout=_LOCAL,
        )
        return RunResult(
            status=status,
            exit_step=self._step,
            reason=reason,
            path=self._full_path(),
            variants=self._variants,
        )

    # -- continue-as-new -----------------------------------------------------------------------

    def _history_full(self) -> bool:
        """Whether to hand over to a new run before the next step. Signal handlers are
        synchronous, so none is ever half-way here; a signal that lands while the hand-over is
        being recorded makes Temporal retry the task, and the new run receives it."""
        info = workflow.info()
        full = (
            info.get_current_history_length() >= CONTINUE_AS_NEW_AT
            or info.is_continue_as_new_suggested()
        )
        return full and workflow.all_handlers_finished()

    def _continue_as_new(self, step_id: str) -> NoReturn:
        """Go on as a new run of the same workflow id (signals, queries and the ledger follow
        it), at ``step_id``, with the pinned version, step counts, variants, goal window, clock,
        pause and recent event ids; the path keeps its last ``PATH_KEPT`` steps in order and
        every older step once."""
        recent = self._path[-PATH_KEPT:]
        dropped = self._path[: len(self._path) - len(recent)]
        carry = RunCarry(
            step=step_id,
            visits=self._visits,
            variants=self._variants,
            path=recent,
            earlier=list(dict.fromkeys(self._earlier + dropped)),
            dropped=self._dropped + len(dropped),
            seen=list(self._seen)[-SEEN_KEPT:],
            entered=self._entered,
            skipped=self._skipped,
            paused=self._paused,
            runs=self._runs + 1,
        )
        workflow.continue_as_new(
            self._input.model_copy(update={"entered_at": self._entered_at, "carry": carry})
        )

    def _full_path(self) -> list[str]:
        """The path for the ledger and the operator: steps dropped by earlier runs (once each),
        then this run's steps in order."""
        return self._earlier + self._path

    # -- steps ---------------------------------------------------------------------------------

    async def _execute(self, step: Step) -> str | None:
        """Run one step; return the id of the next one, or None when the run ends."""
        if isinstance(step, WaitStep):
            await self._pause(step.id, self._wait_length(step.wait))
            return step.next or self._journey.following(step.id)
        if isinstance(step, WaitForStep):
            return await self._wait_for(step.id, step.wait_for)
        if isinstance(step, BranchStep):
            return await self._branch(step)
        if isinstance(step, SplitStep):
            bucket = split_bucket(self._journey.id, step.id, self._input.profile_id)
            variant, goto = pick_variant(step, bucket)
            self._variants[step.id] = variant
            return goto
        if isinstance(step, SendStep):
            return await self._send(step)
        if isinstance(step, UpdateStep):
            await workflow.execute_local_activity(
                "update_profile",
                UpdateInput(profile_id=self._input.profile_id, update=step.update),
                start_to_close_timeout=_LOCAL,
            )
            return step.next or self._journey.following(step.id)
        if isinstance(step, ExitStep):
            self._exit_reason = step.exit.reason
            return None
        raise TypeError(f"unknown step kind {type(step).__name__}")

    async def _wait_for(self, step_id: str, spec: WaitFor) -> str | None:
        seen = len(self._received)

        def arrived() -> bool:
            return spec.event in self._received[seen:]

        got = await self._pause(step_id, self._scaled(spec.timeout), arrived, spec.event)
        chosen = spec.on_event if got else spec.on_timeout
        return chosen or self._journey.following(step_id)

    async def _branch(self, step: BranchStep) -> str | None:
        cases = [c for c in step.branch if not isinstance(c, Else)]
        result: BranchResult = await workflow.execute_local_activity(
            "evaluate_branch",
            BranchInput(
                profile_id=self._input.profile_id,
                conditions=[c.when for c in cases],
                at=self._simulated_now(),
            ),
            result_type=BranchResult,
            start_to_close_timeout=_LOCAL,
        )
        if result.index is not None:
            return cases[result.index].goto
        last = step.branch[-1]
        return last.else_ if isinstance(last, Else) else self._journey.following(step.id)

    async def _send(self, step: SendStep) -> str | None:
        send = step.send
        success = send.next or self._journey.following(step.id)
        base_key = f"{self._input.enrollment_id}:{step.id}:{self._visits[step.id]}"
        attempt = 0
        first_attempt_at: datetime | None = None
        held = False
        while True:
            if self._paused:
                await self._hold(step.id)
                if self._ended is not None:
                    return None
                held = True
            # Each attempt after a deferral gets its own key: a reservation is idempotent per key.
            key = base_key if attempt == 0 else f"{base_key}:{attempt}"
            at = self._simulated_now()
            first_attempt_at = first_attempt_at or at
            request = SendInput(
                send_key=key,
                journey_id=self._journey.id,
                version=self._input.version,
                profile_id=self._input.profile_id,
                step_id=step.id,
                channel=send.channel,
                template=send.template,
                category=send.category,
                priority=self._journey.priority,
                caps=self._journey.caps,
                at=at,
                timezone=self._input.timezone,
                tags=self._journey.tags,
                first_attempt_at=first_attempt_at,
                defer_allowed=send.on_suppressed is None,
                webhook=send.webhook,
                held=held,
            )
            try:
                result: SendResult = await workflow.execute_activity(
                    "send",
                    request,
                    result_type=SendResult,
                    start_to_close_timeout=_SEND_TIMEOUT,
                    schedule_to_close_timeout=SEND_GIVE_UP,
                    retry_policy=_SEND_RETRY,
                    summary=f"send {send.channel}: {send.template}",
                )
            except ActivityError as exc:
                result = await workflow.execute_activity(
                    "give_up_send",
                    GiveUpInput(send=request, reason=_gave_up(exc)),
                    result_type=SendResult,
                    start_to_close_timeout=_SEND_TIMEOUT,
                    retry_policy=_SEND_RETRY,
                    summary=f"give up send {send.channel}: {send.template}",
                )
            if result.status in ("deferred", "arbitrating") and result.retry_at is not None:
                # Arbitration asks again with the same key (its claim); a deferral, a new one.
                attempt += result.status == "deferred"
                why = result.reason or "arbitration window"
                wait = self._scaled(result.retry_at - self._simulated_now())
                await self._pause(step.id, wait, None, None, f"send held by {why}")
                if self._ended is not None:
                    return None
                continue
            if result.exit_run:
                self._ended = ("exited", result.reason or "capped")
                return None
            if result.status == "sent" or (
                # It may have reached the person: go on as after a send, never try another path.
                result.status == "unknown" and workflow.patched("unknown-send-continues")
            ):
                return success
            if result.status == "failed":
                return send.on_failure or success
            return send.on_suppressed or success

    # -- time ----------------------------------------------------------------------------------

    def _scaled(self, length: timedelta) -> timedelta:
        return length / self._input.time_scale

    def _simulated_now(self) -> datetime:
        """The run's own clock: workflow time plus what its scaled waits skipped. Caps and goal
        windows see the journey's timeline while processing time stays real; with no scaling it
        is simply workflow time."""
        return workflow.now() + self._skipped

    def _converts(self, signal: EventSignal) -> bool:
        """Whether a goal event ends the run as converted: its own time is in the goal window
        (the rule the report counts by), however late it arrives."""
        goal = self._journey.goal
        assert goal is not None
        new = goal.reached(self._entered_at, signal.occurred_at)
        old = self._simulated_now() - self._entered <= goal.within
        if new != old and not workflow.patched(GOAL_BY_EVENT_TIME):
            return old
        return new

    def _wait_length(self, wait: timedelta | WaitUntil) -> timedelta:
        if isinstance(wait, timedelta):
            return self._scaled(wait)
        zone = ZoneInfo(self._input.timezone)
        hour, minute = wait.hour_minute
        # Elapsed time to the next showing of the time on the person's clock, counted on the
        # run's clock (scaled runs land at that local time of their own timeline). Subtracting
        # two datetimes in one ZoneInfo would give wall-clock time, an hour off across DST.
        clock = self._simulated_now()
        new = next_wall_time(clock, time(hour, minute), zone) - clock
        old = _wall_clock_wait(workflow.now(), hour, minute, zone)
        if new != old and not workflow.patched(WAIT_UNTIL_ELAPSED):
            return self._scaled(old)
        return self._scaled(new)

    async def _hold(self, step_id: str) -> None:
        """Hold before a send while an operator has the journey paused (no timer: a pause has
        no deadline), until resumed or stopped. Runs with no pause never reach this, so recorded
        histories replay unchanged."""
        self._show_step(PAUSED)
        workflow.set_current_details(f"paused by an operator: holding before send {step_id}")
        await workflow.wait_condition(lambda: not self._paused or self._ended is not None)
        self._show_step(step_id)

    def _show_step(self, step: str) -> None:
        """Set ``JourneyStep`` (one history event). A run started by an enroller that sets it
        to the first resting step upserts only a change, so that rest and a deferral's second
        wait at one step cost no event; runs started before upsert at every rest, and replay
        so (the input field decides, not a patch, whose marker would cost what it saves)."""
        if (
            self._input.journey_step_changes_only
            and workflow.info().typed_search_attributes.get(JOURNEY_STEP) == step
        ):
            return
        workflow.upsert_search_attributes([JOURNEY_STEP.value_set(step)])

    async def _pause(
        self,
        step_id: str,
        length: timedelta,
        done: Callable[[], bool] | None = None,
        waiting_for: str | None = None,
        label: str | None = None,
    ) -> bool:
        """Sleep durably for ``length`` unless the run ends or ``done()`` turns true.

        Returns whether ``done()`` turned true. Keeps the operator's view current.
        """
        if length <= timedelta(0):
            return done() if done else False
        self._waiting_for = waiting_for
        self._until = workflow.now() + length
        self._show_step(step_id)
        local_until = self._until.astimezone(ZoneInfo(self._input.timezone))
        what = label or (
            f"waiting for {waiting_for}" if waiting_for else f"step {step_id}: waiting"
        )
        workflow.set_current_details(
            f"{what} until {local_until:%Y-%m-%d %H:%M} {self._input.timezone}"
        )
        began = workflow.now()
        try:
            await workflow.wait_condition(
                lambda: self._ended is not None or (done is not None and done()),
                timeout=length,
                timeout_summary=f"{step_id}: {waiting_for or 'wait'}",
            )
        except TimeoutError:
            self._count_skipped(began, length)
            return False
        finally:
            # No workflow call here: on eviction (a worker shutting down, a full cache) the
            # coroutine is closed outside the workflow's event loop and this still runs.
            self._waiting_for = self._until = None
        self._count_skipped(began, length)
        return done is not None and done()

    def _count_skipped(self, began: datetime, length: timedelta) -> None:
        """Add what a finished scaled wait compressed to the run's clock. Only the wait itself
        is compressed: time the run spent queued behind a busy worker stays real, or a backlog
        of seconds would count as days of the journey."""
        waited = min(workflow.now() - began, length)
        self._skipped += waited * (self._input.time_scale - 1)


def _wall_clock_wait(now: datetime, hour: int, minute: int, zone: ZoneInfo) -> timedelta:
    """The wait before ``WAIT_UNTIL_ELAPSED``: a wall-clock difference, kept for replay."""
    local = now.astimezone(zone)
    target = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target <= local:
        target += timedelta(days=1)
    return target - local


def _gave_up(exc: ActivityError) -> str:
    """``retries_exhausted`` plus the last error's type, as the delivery log's reason."""
    cause: BaseException | None = exc.cause
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type:
            return f"retries_exhausted:{cause.type}"
        cause = cause.__cause__
    return "retries_exhausted"
