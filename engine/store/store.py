"""The journey store: profiles, events, journey versions, enrollments and the delivery log.

One ``Store`` per process, shared by the API, the worker's activities and the CLI. Every method
opens a short connection or transaction of its own; nothing is held between calls.
"""

from __future__ import annotations

from engine.store.analytics import AnalyticsStore
from engine.store.controls import ControlStore
from engine.store.delivery_log import DeliveryStore
from engine.store.events import EventStore
from engine.store.health import HealthStore
from engine.store.journeys import JourneyStore
from engine.store.memberships import MembershipStore
from engine.store.people import PeopleStore
from engine.store.population import PopulationStore


class Store(
    PeopleStore,
    EventStore,
    JourneyStore,
    MembershipStore,
    DeliveryStore,
    AnalyticsStore,
    PopulationStore,
    ControlStore,
    HealthStore,
):
    """Async access to the journey database (SQLite or PostgreSQL).

    Build it with :meth:`from_url`, call :meth:`migrate` once at start-up, :meth:`aclose` at exit
    (or use ``async with``). Timestamps passed in must be timezone-aware (``ValueError``
    otherwise); all returned timestamps are aware UTC. ``clock`` only stamps bookkeeping columns
    (``updated_at``, ``received_at``).

    Profile ids merged into another profile (see :meth:`identify`) keep working everywhere a
    profile id is read or written: they resolve to the survivor, so a run started before a merge
    reads the merged profile and its consent.
    """
