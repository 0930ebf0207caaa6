"""Pause, resume, stop and archive a journey, with its runs in flight handled.

- **pause**: the journey takes no new entries (its schedule is paused; event and API entries are
  refused and recorded for ``journey why``) and every live run holds before its next send
  (durably: the pause is a signal in the run's history; waits go on). Pausing again re-signals.
- **resume**: entries open again and held runs go on; a held send whose deferral expired meanwhile
  is logged ``expired`` (the cap service refuses a deferral asked again past its expiry).
- **stop**: every live run ends at once with status ``stopped``; nothing more is sent.
- **archive**: a stopped journey, hidden from ``journey list`` by default; its history stays.

Each change is recorded first (who, when, why), then the runs are told. A run found missing
while its ledger row is still active is being started or finishing: it is asked again for a few
seconds; the ones that never answer are reported, never silently skipped.

Errors (one line each for the CLI and a 4xx for the API)::

    LifecycleError
      UnknownJourney       no version of that journey was ever deployed
      InvalidTransition    e.g. resuming a stopped journey
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from engine.domain import JourneyControl, JourneyState
from engine.dsl.models import Journey, SegmentEntry
from engine.services.schedules import schedule_id
from engine.store import Store
from engine.temporal import workflow_id
from engine.workflow.messages import ControlSignal

log = structlog.get_logger(__name__)

_ALLOWED: dict[str, tuple[JourneyState, ...]] = {
    "pause": ("active", "paused"),
    "resume": ("paused", "active"),
    "stop": ("active", "paused", "stopped"),
    "archive": ("stopped", "archived"),
}
_TARGET: dict[str, JourneyState] = {
    "pause": "paused",
    "resume": "active",
    "stop": "stopped",
    "archive": "archived",
}
_SIGNAL_ROUNDS = 5
_SIGNALS_IN_FLIGHT = 50


class LifecycleError(Exception):
    """Base of the journey lifecycle's errors."""


class UnknownJourney(LifecycleError):
    def __init__(self, journey_id: str) -> None:
        super().__init__(f"unknown journey {journey_id!r} (never deployed)")


class InvalidTransition(LifecycleError):
    def __init__(self, journey_id: str, action: str, state: JourneyState) -> None:
        super().__init__(f"cannot {action} journey {journey_id!r}: it is {state}")


@dataclass(frozen=True)
class LifecycleResult:
    control: JourneyControl
    previous: JourneyState
    signalled: int = 0
    """Live runs told of the change."""
    unreached: list[str] = field(default_factory=list)
    """Workflow ids of live runs that could not be told (still starting, or gone)."""


class JourneyLifecycle:
    def __init__(self, store: Store, client: Client) -> None:
        self._store = store
        self._client = client

    async def pause(
        self, journey_id: str, by: str, now: datetime, reason: str | None = None
    ) -> LifecycleResult:
        return await self._change("pause", journey_id, by, now, reason)

    async def resume(
        self, journey_id: str, by: str, now: datetime, reason: str | None = None
    ) -> LifecycleResult:
        return await self._change("resume", journey_id, by, now, reason)

    async def stop(
        self, journey_id: str, by: str, now: datetime, reason: str | None = None
    ) -> LifecycleResult:
        return await self._change("stop", journey_id, by, now, reason)

    async def archive(
        self, journey_id: str, by: str, now: datetime, reason: str | None = None
    ) -> LifecycleResult:
        return await self._change("archive", journey_id, by, now, reason)

    async def _change(
        self, action: str, journey_id: str, by: str, now: datetime, reason: str | None
    ) -> LifecycleResult:
        previous = await check_transition(self._store, action, journey_id)
        target = _TARGET[action]
        control = await self._store.set_journey_state(journey_id, target, now, by, reason)
        await self._steer_schedule(journey_id, control)
        signalled, unreached = 0, list[str]()
        if action in ("pause", "resume", "stop"):
            signal = ControlSignal(action=action, reason=reason)
            signalled, unreached = await self._tell_runs(journey_id, signal)
        log.info(
            "journey_state_changed",
            journey_id=journey_id,
            state=target,
            previous=previous,
            by=by,
            runs=signalled,
            unreached=len(unreached),
        )
        return LifecycleResult(control, previous, signalled, unreached)

    async def _steer_schedule(self, journey_id: str, control: JourneyControl) -> None:
        version = await self._store.latest_version(journey_id)
        if version is None or not isinstance(
            Journey.model_validate(version.definition).entry, SegmentEntry
        ):
            return  # event and API journeys have no schedule
        handle = self._client.get_schedule_handle(schedule_id(journey_id))
        note = f"journey {control.state} by {control.changed_by}"
        try:
            if control.state == "active":
                await handle.unpause(note=note)
            else:
                await handle.pause(note=note)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise  # not found: a segment journey with no `schedule` (entered by hand)

    async def _tell_runs(self, journey_id: str, signal: ControlSignal) -> tuple[int, list[str]]:
        """Signal every live run; a run not found while its ledger row is active is asked again
        (it is being started), and reported when it never answers."""
        told: set[str] = set()
        missing: list[str] = []
        limit = asyncio.Semaphore(_SIGNALS_IN_FLIGHT)

        async def tell(run_id: str) -> bool:
            async with limit:
                try:
                    await self._client.get_workflow_handle(run_id).signal("control", signal)
                    return True
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
                    return False

        for attempt in range(_SIGNAL_ROUNDS):
            live = [
                workflow_id(journey_id, e.profile_id)
                for e in await self._store.enrollments(journey_id)
                if e.status == "active"
            ]
            pending = [run_id for run_id in dict.fromkeys(live) if run_id not in told]
            if not pending:
                return len(told), []
            results = await asyncio.gather(*(tell(run_id) for run_id in pending))
            told.update(run_id for run_id, ok in zip(pending, results, strict=True) if ok)
            missing = [run_id for run_id, ok in zip(pending, results, strict=True) if not ok]
            if not missing:
                # A second look catches runs entered while this pass was signalling.
                continue
            await asyncio.sleep(0.5 * (attempt + 1))
        return len(told), missing


async def check_transition(store: Store, action: str, journey_id: str) -> JourneyState:
    """The journey's state, when ``action`` may change it; else UnknownJourney or
    InvalidTransition (store reads only: a caller can refuse bad input before connecting to
    Temporal)."""
    if await store.latest_version(journey_id) is None:
        raise UnknownJourney(journey_id)
    previous = await store.journey_state(journey_id)
    if previous not in _ALLOWED[action]:
        raise InvalidTransition(journey_id, action, previous)
    return previous


async def journey_states(store: Store, journey_ids: Sequence[str]) -> dict[str, JourneyState]:
    """Each journey's current state (``active`` when it never changed)."""
    controls = await store.journey_controls(journey_ids)
    return {jid: controls[jid].state if jid in controls else "active" for jid in journey_ids}
