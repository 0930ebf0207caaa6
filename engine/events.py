"""Customer events: store once, then wake every journey that listens for them.

Listening journeys come from the deployed definitions (the latest version of each journey), never
from scanning Temporal. An event that enters a journey starts a run (re-entry rules apply); when
the person already has a live run, and for every other listener, the event is signalled to the
person's live run, if there is one.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import structlog
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from engine.domain import Event, JourneyVersion
from engine.dsl.models import EventEntry
from engine.enroll import Enroller
from engine.store import Store
from engine.temporal import workflow_id
from engine.workflow.messages import EventSignal

log = structlog.get_logger(__name__)


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

    async def refresh(self) -> None:
        """Re-read the deployed journeys (call after a deploy)."""
        listeners: dict[str, list[JourneyVersion]] = {}
        for version in await self._store.latest_versions():
            for name in self._enroller.journey(version).listens_for():
                listeners.setdefault(name, []).append(version)
        self._listeners = listeners
        self._loaded_at = time.monotonic()

    async def ingest(self, event: Event, now: datetime) -> bool:
        """Store ``event``; if it is new, deliver it. Returns False for a duplicate event id."""
        if not await self._store.record_event(event):
            return False
        if self._listeners is None or time.monotonic() - self._loaded_at > self._max_age:
            await self.refresh()
        assert self._listeners is not None
        versions = self._listeners.get(event.name, [])
        if versions:
            signal = EventSignal(
                name=event.name,
                event_id=event.event_id,
                occurred_at=event.occurred_at,
                properties=event.properties,
            )
            await asyncio.gather(*(self._deliver(v, event, signal, now) for v in versions))
        return True

    async def _deliver(
        self, version: JourneyVersion, event: Event, signal: EventSignal, now: datetime
    ) -> None:
        journey = self._enroller.journey(version)
        if isinstance(journey.entry, EventEntry) and journey.entry.event == event.name:
            profile = await self._store.get_profile(event.profile_id)
            if profile is not None:
                outcome = await self._enroller.enroll_one(version, profile, now)
                if outcome != "live":
                    return
        handle = self._client.get_workflow_handle(workflow_id(journey.id, event.profile_id))
        try:
            await handle.signal("event", signal)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            # No live run for this person: nothing is waiting for the event.
