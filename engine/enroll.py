"""Entering people into a journey: re-entry decided from the store's ledger, one live run each.

Temporal's workflow-id rules only hold within retention, so the lifetime rules (``once``,
``after`` a cooldown) are read from the enrollment table; "never two live runs per person" is
also enforced by the workflow id ``journey:<journey>:<profile>`` with the conflict policy FAIL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import structlog
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from engine.domain import Enrollment, JourneyVersion, Profile
from engine.dsl.models import Journey
from engine.store import Store
from engine.temporal import run_search_attributes, workflow_id
from engine.workflow.messages import JourneyInput

log = structlog.get_logger(__name__)

Outcome = Literal["started", "reentry_blocked", "live", "missing"]


@dataclass(frozen=True)
class EnrollReport:
    counts: dict[str, int]

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
    ) -> None:
        self._store = store
        self._client = client
        self._task_queue = task_queue
        self._time_scale = time_scale
        self._limit = asyncio.Semaphore(concurrency)
        self._journeys: dict[tuple[str, int], Journey] = {}

    def journey(self, version: JourneyVersion) -> Journey:
        key = (version.journey_id, version.version)
        if key not in self._journeys:
            self._journeys[key] = Journey.model_validate(version.definition)
        return self._journeys[key]

    async def enroll(
        self, version: JourneyVersion, profile_ids: Iterable[str], now: datetime
    ) -> EnrollReport:
        """Start a run for each person the re-entry rules allow; count every outcome."""
        ids = list(dict.fromkeys(profile_ids))
        profiles = await self._store.get_profiles(ids)
        outcomes = await asyncio.gather(
            *(self._enroll_one(version, pid, profiles.get(pid), now) for pid in ids)
        )
        report = EnrollReport(dict(Counter(outcomes)))
        log.info(
            "enrolled", journey_id=version.journey_id, version=version.version, **report.counts
        )
        return report

    async def enroll_one(self, version: JourneyVersion, profile: Profile, now: datetime) -> Outcome:
        """Enter one person (event entry).

        Not signal-with-start: it cannot refuse a live run, so a second entry would leave a
        ledger row for a run that never started. The caller signals the live run instead.
        """
        return await self._enroll_one(version, profile.id, profile, now)

    async def _enroll_one(
        self,
        version: JourneyVersion,
        profile_id: str,
        profile: Profile | None,
        now: datetime,
    ) -> Outcome:
        if profile is None:
            return "missing"
        journey = self.journey(version)
        async with self._limit:
            last = await self._store.last_enrollment(journey.id, profile_id)
            if not reentry_allows(journey, last, now):
                return "live" if last is not None and last.status == "active" else "reentry_blocked"
            enrollment = Enrollment(
                id=uuid.uuid4().hex,
                journey_id=journey.id,
                journey_version=version.version,
                profile_id=profile_id,
                entered_at=now,
            )
            await self._store.create_enrollment(enrollment)
            try:
                await self._client.start_workflow(
                    "JourneyWorkflow",
                    JourneyInput(
                        journey=journey,
                        version=version.version,
                        profile_id=profile_id,
                        enrollment_id=enrollment.id,
                        timezone=profile.timezone,
                        time_scale=self._time_scale,
                    ),
                    id=workflow_id(journey.id, profile_id),
                    task_queue=self._task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    search_attributes=run_search_attributes(
                        journey.id, version.version, profile_id
                    ),
                    static_summary=f"{journey.name} v{version.version}",
                )
            except WorkflowAlreadyStartedError:
                await self._store.delete_enrollment(enrollment.id)
                return "live"
            except BaseException:
                # Nothing half-written: a run that did not start leaves no enrollment behind.
                await self._store.delete_enrollment(enrollment.id)
                raise
            return "started"
