"""Entering people into a journey: re-entry decided from the store's ledger, one live run each.

Temporal's workflow-id rules only hold within retention, so the lifetime rules (``once``,
``after`` a cooldown) are read from the enrollment table, atomically with the new ledger row
(``Store.claim_enrollments`` holds a lock per person, so ten simultaneous entries of one person
under ``once`` make one enrollment); "never two live runs per person" is also enforced by the
workflow id ``journey:<journey>:<profile>`` with the conflict policy FAIL.

People are entered in pages: one store transaction claims a page, then its runs start
concurrently (``concurrency`` starts in flight), while the next page is claimed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Literal

import structlog
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from engine.domain import Enrollment, JourneyState, JourneyVersion, Profile
from engine.dsl.models import EventEntry, Journey, SegmentEntry
from engine.metrics import EngineMetrics
from engine.store import Store
from engine.temporal import run_search_attributes, workflow_id
from engine.workflow.journey import first_rest
from engine.workflow.messages import JourneyInput

log = structlog.get_logger(__name__)

Outcome = Literal[
    "started", "reentry_blocked", "live", "missing", "journey_paused", "journey_stopped"
]
"""started: a run began; reentry_blocked: the re-entry rule refused; live: the person has a
run in this journey already; missing: no such profile; journey_paused / journey_stopped: an
operator paused or stopped the journey, which takes no entries (recorded for ``journey why``)."""

ENROLLMENT_MEMO = "enrollment_id"
"""The memo key naming a run's ledger row, to tell our run from another after a lost answer."""
PAGE = 500
"""People claimed per store transaction."""


@dataclass(frozen=True)
class EnrollReport:
    counts: dict[str, int]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    """Each profile id asked for -> what happened to it."""

    def __getitem__(self, outcome: Outcome) -> int:
        return self.counts.get(outcome, 0)


def reentry_allows(journey: Journey, last: Enrollment | None, now: datetime) -> bool:
    """May a person whose last enrollment is ``last`` enter ``journey`` at ``now``?"""
    if last is None:
        return True
    if last.status == "active":
        return False
    policy = journey.reentry
    if policy.policy == "once":
        return False
    if policy.policy == "after":
        assert policy.cooldown is not None
        return last.entered_at + policy.cooldown <= now
    return True


class Enroller:
    def __init__(
        self,
        store: Store,
        client: Client,
        task_queue: str,
        *,
        time_scale: float = 1.0,
        concurrency: int = 50,
        metrics: EngineMetrics | None = None,
    ) -> None:
        """``metrics`` counts every person asked to enter, by journey, entry kind and outcome."""
        self._store = store
        self._metrics = metrics if metrics is not None else EngineMetrics()
        self._client = client
        self._task_queue = task_queue
        self._time_scale = time_scale
        self._limit = asyncio.Semaphore(concurrency)
        self._journeys: dict[tuple[str, int], Journey] = {}

    @property
    def client(self) -> Client:
        """The Temporal client runs are started with."""
        return self._client

    @property
    def metrics(self) -> EngineMetrics:
        """Where the entries are counted."""
        return self._metrics

    def journey(self, version: JourneyVersion) -> Journey:
        key = (version.journey_id, version.version)
        if key not in self._journeys:
            self._journeys[key] = Journey.model_validate(version.definition)
        return self._journeys[key]

    async def enroll(
        self, version: JourneyVersion, profile_ids: Iterable[str], now: datetime
    ) -> EnrollReport:
        """Start a run for each person the re-entry rules allow; count every outcome.

        Merged profile ids enter as their survivor (two ids of one person: the second is
        ``live``). If a start fails with anything but "already running", the runs of the pages
        in flight settle, the ledger rows of runs that did not start are removed, and the first
        error is raised.
        """
        ids = list(dict.fromkeys(profile_ids))
        outcomes: dict[str, Outcome] = {}
        in_flight: list[asyncio.Task[dict[str, Outcome]]] = []
        try:
            for start in range(0, len(ids), PAGE):
                page = ids[start : start + PAGE]
                claimed = await self._claim(version, page, now)
                outcomes.update(claimed.settled)
                in_flight.append(asyncio.create_task(self._start_page(version, claimed)))
                # Claim the next page while this one starts; never more than two pages out.
                if len(in_flight) == 2:
                    outcomes.update(await in_flight.pop(0))
            for task in in_flight:
                outcomes.update(await task)
        finally:
            # An error: let every page in flight finish (and clean up) before raising.
            await asyncio.gather(*in_flight, return_exceptions=True)
        report = EnrollReport(dict(Counter(outcomes[pid] for pid in ids)), outcomes)
        self._count(version, report.counts)
        log.info(
            "enrolled", journey_id=version.journey_id, version=version.version, **report.counts
        )
        return report

    async def enroll_one(self, version: JourneyVersion, profile: Profile, now: datetime) -> Outcome:
        """Enter one person (event entry).

        Not signal-with-start: it cannot refuse a live run, so a second entry would leave a
        ledger row for a run that never started. The caller signals the live run instead.
        """
        claimed = _Page(settled={}, starts=[], profiles={profile.id: profile})
        state = await self._store.journey_state(version.journey_id)
        claims = await self._store.claim_enrollments(
            version.journey_id,
            version.version,
            [profile.id],
            now,
            self._allows(version, state, now),
        )
        claim = claims[profile.id]
        if claim.created is None:
            outcome = _refused(claim.last, state)
            await self._record_refusals(version, {profile.id: outcome}, now)
        else:
            claimed.starts.append((profile.id, claim.created))
            outcome = (await self._start_page(version, claimed))[profile.id]
        self._count(version, {outcome: 1})
        return outcome

    def _count(self, version: JourneyVersion, counts: dict[str, int]) -> None:
        self._metrics.entered(version.journey_id, entry_kind(self.journey(version)), counts)

    def _allows(
        self, version: JourneyVersion, state: JourneyState, now: datetime
    ) -> Callable[[Enrollment | None], bool]:
        if state != "active":
            return lambda last: False  # still read under the lock: a live run stays "live"
        return partial(reentry_allows, self.journey(version), now=now)

    async def _record_refusals(
        self, version: JourneyVersion, outcomes: dict[str, Outcome], now: datetime
    ) -> None:
        for reason in ("journey_paused", "journey_stopped"):
            refused = [pid for pid, outcome in outcomes.items() if outcome == reason]
            await self._store.record_entry_refusals(version.journey_id, refused, now, reason)
            if refused:
                log.info(
                    "entry_refused",
                    journey_id=version.journey_id,
                    reason=reason,
                    people=len(refused),
                )

    async def _claim(self, version: JourneyVersion, page: list[str], now: datetime) -> _Page:
        # Read per page: a journey paused while a large segment enters stops the rest of it.
        state = await self._store.journey_state(version.journey_id)
        profiles = await self._store.get_profiles(page)
        settled: dict[str, Outcome] = {pid: "missing" for pid in page if pid not in profiles}
        # Asked id -> the person (merged ids resolve to their survivor).
        people: dict[str, list[str]] = {}
        for pid in page:
            if pid in profiles:
                people.setdefault(profiles[pid].id, []).append(pid)
        claims = await self._store.claim_enrollments(
            version.journey_id,
            version.version,
            list(people),
            now,
            self._allows(version, state, now),
        )
        starts: list[tuple[str, Enrollment]] = []
        for person, asked in people.items():
            claim = claims[person]
            if claim.created is None:
                settled.update({pid: _refused(claim.last, state) for pid in asked})
            else:
                starts.append((asked[0], claim.created))
                settled.update({pid: "live" for pid in asked[1:]})
        await self._record_refusals(version, settled, now)
        by_person = {profiles[pid].id: profiles[pid] for pid in page if pid in profiles}
        return _Page(settled, starts, by_person)

    async def _start_page(self, version: JourneyVersion, page: _Page) -> dict[str, Outcome]:
        results = await asyncio.gather(
            *(self._start(version, page.profiles[e.profile_id], e) for _, e in page.starts),
            return_exceptions=True,
        )
        outcomes: dict[str, Outcome] = {}
        failed: list[str] = []
        error: BaseException | None = None
        for (asked, enrollment), result in zip(page.starts, results, strict=True):
            if isinstance(result, BaseException):
                failed.append(enrollment.id)
                error = error or result
            else:
                outcomes[asked] = result
                if result != "started":
                    failed.append(enrollment.id)
        # Nothing half-written: a run that did not start leaves no enrollment behind.
        await self._store.delete_enrollments(failed)
        if error is not None:
            raise error
        return outcomes

    async def _start(self, version: JourneyVersion, profile: Profile, row: Enrollment) -> Outcome:
        journey = self.journey(version)
        async with self._limit:
            try:
                await self._client.start_workflow(
                    "JourneyWorkflow",
                    JourneyInput(
                        journey=journey,
                        version=version.version,
                        profile_id=profile.id,
                        enrollment_id=row.id,
                        timezone=profile.timezone,
                        time_scale=self._time_scale,
                        entered_at=row.entered_at,
                        journey_step_changes_only=True,
                    ),
                    id=workflow_id(journey.id, profile.id),
                    task_queue=self._task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    # Shown from the start: the run's first upsert (an event) is not needed.
                    search_attributes=run_search_attributes(
                        journey.id, version.version, profile.id, first_rest(journey)
                    ),
                    static_summary=f"{journey.name} v{version.version}",
                    memo={ENROLLMENT_MEMO: row.id},
                )
            except WorkflowAlreadyStartedError:
                return "live"
            except Exception:
                # The start may have gone through with only its answer lost (a timeout, a
                # dropped connection): then the run is real and its ledger row must stay.
                if await self._started(journey.id, profile.id, row.id):
                    return "started"
                raise
        return "started"

    async def _started(self, journey_id: str, profile_id: str, enrollment_id: str) -> bool:
        """Whether the person's run in the journey is the one started for ``enrollment_id``."""
        handle = self._client.get_workflow_handle(workflow_id(journey_id, profile_id))
        try:
            description = await handle.describe()
            memo = await description.memo()
        except RPCError:  # no such run, or Temporal unreachable: not started as far as we can tell
            return False
        return memo.get(ENROLLMENT_MEMO) == enrollment_id


@dataclass
class _Page:
    settled: dict[str, Outcome]
    """Outcomes known without starting anything (missing, refused, a second id of a person)."""
    starts: list[tuple[str, Enrollment]]
    """(asked id, claimed ledger row) for each run to start."""
    profiles: dict[str, Profile]
    """The people of the page, by (resolved) profile id."""


def entry_kind(journey: Journey) -> str:
    """How the journey enters people: ``segment``, ``event`` or ``api``."""
    if isinstance(journey.entry, SegmentEntry):
        return "segment"
    if isinstance(journey.entry, EventEntry):
        return "event"
    return "api"


def _refused(last: Enrollment | None, state: JourneyState = "active") -> Outcome:
    if last is not None and last.status == "active":
        return "live"
    if state == "paused":
        return "journey_paused"
    if state != "active":
        return "journey_stopped"
    return "reentry_blocked"
