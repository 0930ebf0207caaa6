"""Customer events: store once, then wake every journey that listens for them.

Listening journeys come from the deployed definitions (the latest version of each journey), never
from scanning Temporal. An event that enters a journey starts a run (re-entry rules apply); when
the person already has a live run, and for every other listener, the event is signalled to the
person's live run, if there is one. Runs started before the person's profiles were merged keep
their old workflow id, so they are signalled too.

Delivery is at least once: an event with listeners is stored as undelivered in the same
transaction as the event itself, and marked delivered once every listener got it. If delivery
fails, resending the event (a duplicate) delivers it again, and :meth:`EventRouter.redeliver`
sweeps up what nobody resent (a crash between store and signal). A run can therefore receive
an event twice; the workflow should ignore an ``event_id`` it has seen.

Errors::

    DeliveryIncomplete   the events were stored, but some could not be delivered yet
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from engine.domain import Event, JourneyVersion, Profile
from engine.dsl.models import EventEntry
from engine.services.enroll import Enroller
from engine.store import RecordedEvent, Store
from engine.temporal import workflow_id
from engine.workflow.messages import EventSignal

log = structlog.get_logger(__name__)

DELIVERY_CONCURRENCY = 32
"""People whose events are delivered at once (one person's events go one after another)."""


class DeliveryIncomplete(Exception):
    """Events were stored but not all were delivered; resending them (or a later
    :meth:`EventRouter.redeliver`) delivers the rest. ``recorded`` says what was stored."""

    def __init__(self, recorded: list[RecordedEvent], cause: BaseException) -> None:
        super().__init__(f"event delivery failed ({type(cause).__name__}); the events are stored")
        self.recorded = recorded
        self.cause = cause


class EventRouter:
    def __init__(
        self, store: Store, client: Client, enroller: Enroller, max_age: float = 10.0
    ) -> None:
        self._store = store
        self._client = client
        self._enroller = enroller
        self._max_age = max_age
        """Seconds before the deployed journeys are read again (deploys from other processes)."""
        self._listeners: dict[str, list[JourneyVersion]] | None = None
        self._loaded_at = 0.0

    @property
    def enroller(self) -> Enroller:
        return self._enroller

    async def refresh(self) -> None:
        """Re-read the deployed journeys (call after a deploy)."""
        listeners: dict[str, list[JourneyVersion]] = {}
        for version in await self._store.latest_versions():
            for name in self._enroller.journey(version).listens_for():
                listeners.setdefault(name, []).append(version)
        self._listeners = listeners
        self._loaded_at = time.monotonic()

    async def listeners(self) -> dict[str, list[JourneyVersion]]:
        """Event name -> the latest versions of the journeys listening for it."""
        if self._listeners is None or time.monotonic() - self._loaded_at > self._max_age:
            await self.refresh()
        assert self._listeners is not None
        return self._listeners

    async def ingest(self, event: Event, now: datetime) -> bool:
        """Store ``event``; if it is new, deliver it. Returns False for a duplicate event id.

        Raises the delivery's own error (``RPCError``...) when delivery fails; the event is
        stored, and delivered again when it is resent.
        """
        try:
            [recorded] = await self.ingest_batch([event], now)
        except DeliveryIncomplete as exc:
            raise exc.cause from exc
        return recorded.fresh

    async def ingest_batch(self, events: Sequence[Event], now: datetime) -> list[RecordedEvent]:
        """Store ``events`` in one transaction, then deliver the new ones (and duplicates whose
        earlier delivery did not complete). One result per event, in order.

        One person's events reach their journeys in the order given; different people's are
        delivered concurrently. Raises ``DeliveryIncomplete`` (events stored) when a delivery
        fails, and the store's errors (nothing stored) when storing fails.
        """
        listeners = await self.listeners()
        recorded = await self._store.record_events(events, pending_names=listeners.keys())
        pending = [r.event for r in recorded if r.pending]
        if pending:
            try:
                await self._deliver_all(pending, now)
            except Exception as exc:
                # Whatever stopped delivery (Temporal unreachable, the store failing half-way),
                # the events are stored and will be delivered again: say so to the caller.
                raise DeliveryIncomplete(recorded, exc) from exc
        return recorded

    async def redeliver(
        self, now: datetime, older_than: timedelta = timedelta(minutes=1), limit: int = 1000
    ) -> int:
        """Deliver stored events whose delivery is still outstanding ``older_than`` after they
        were received (what a crash, or a client that never resent, left behind); returns how
        many were delivered. Run it periodically, in one process or several."""
        events = await self._store.undelivered_events(now - older_than, limit)
        if events:
            await self._deliver_all(events, now)
        return len(events)

    async def _deliver_all(self, events: list[Event], now: datetime) -> None:
        by_person: dict[str, list[Event]] = {}
        for event in events:
            by_person.setdefault(event.profile_id, []).append(event)
        aliases = await self._store.merged_ids(by_person)
        profiles = await self._entering_profiles(by_person)
        limit = asyncio.Semaphore(DELIVERY_CONCURRENCY)
        delivered: list[str] = []

        async def person(profile_id: str, queue: list[Event]) -> None:
            async with limit:
                for event in queue:
                    await self._deliver(event, aliases.get(profile_id, []), profiles, now)
                    delivered.append(event.event_id)

        results = await asyncio.gather(
            *(person(pid, queue) for pid, queue in by_person.items()), return_exceptions=True
        )
        await self._store.mark_delivered(delivered, now)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            log.warning(
                "event_delivery_failed",
                failed_people=len(errors),
                delivered=len(delivered),
                outstanding=len(events) - len(delivered),
                error=type(errors[0]).__name__,
            )
            raise errors[0]

    async def _entering_profiles(
        self, by_person: dict[str, list[Event]]
    ) -> dict[str, Profile | None]:
        """The profile (None: unknown) of each person with an event that enters a journey, read
        in one query for the batch rather than one per event."""
        entries: set[str] = set()
        for versions in (await self.listeners()).values():
            for version in versions:
                entry = self._enroller.journey(version).entry
                if isinstance(entry, EventEntry):
                    entries.add(entry.event)
        wanted = [pid for pid, queue in by_person.items() if any(e.name in entries for e in queue)]
        if not wanted:
            return {}
        found = await self._store.get_profiles(wanted)
        return {pid: found.get(pid) for pid in wanted}

    async def _deliver(
        self,
        event: Event,
        aliases: list[str],
        profiles: Mapping[str, Profile | None],
        now: datetime,
    ) -> None:
        listeners = await self.listeners()
        versions = listeners.get(event.name, [])
        if not versions:
            return
        signal = EventSignal(
            name=event.name,
            event_id=event.event_id,
            occurred_at=event.occurred_at,
            properties=event.properties,
        )
        await asyncio.gather(
            *(self._to_journey(v, event, signal, aliases, profiles, now) for v in versions)
        )

    async def _to_journey(
        self,
        version: JourneyVersion,
        event: Event,
        signal: EventSignal,
        aliases: list[str],
        profiles: Mapping[str, Profile | None],
        now: datetime,
    ) -> None:
        journey = self._enroller.journey(version)
        if isinstance(journey.entry, EventEntry) and journey.entry.event == event.name:
            if event.profile_id in profiles:
                profile = profiles[event.profile_id]
            else:  # a journey deployed since the batch's profiles were read
                profile = await self._store.get_profile(event.profile_id)
            if profile is not None:
                outcome = await self._enroller.enroll_one(version, profile, now)
                if outcome != "live":
                    return  # a paused journey's live run was "live": it still hears events
        for profile_id in (event.profile_id, *aliases):
            handle = self._client.get_workflow_handle(workflow_id(journey.id, profile_id))
            try:
                await handle.signal("event", signal)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                # No live run for this person: nothing is waiting for the event.


async def redeliver_periodically(
    router: EventRouter, stop: asyncio.Event, every: float = 60.0
) -> None:
    """Sweep stored-but-undelivered events every ``every`` seconds until ``stop`` is set (run it
    beside the API; several processes may run it)."""
    while not stop.is_set():
        try:
            delivered = await router.redeliver(datetime.now(UTC))
            if delivered:
                log.info("events_redelivered", count=delivered)
        except (RPCError, SQLAlchemyError, OSError) as exc:
            log.warning("redelivery_failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
