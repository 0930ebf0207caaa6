"""Domain records shared by every layer: what a profile, an event, an enrollment and a delivery are.

Plain frozen dataclasses with no behaviour that needs I/O; the store maps them to tables, the
workflow and activities pass them around.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

DeliveryStatus = Literal[
    "sent", "suppressed", "deferred", "failed", "expired", "attempting", "unknown"
]
"""sent: handed to the provider; suppressed: a rule refused it (reason says which); deferred:
held until a window frees; failed: refused for good; expired: deferred past its expiry;
attempting: being handed to an at-most-once provider (no outcome yet); unknown: an attempt whose
outcome was lost (a worker died mid-send, a timeout after the request went out): it may have
reached the person, so it is never sent again and keeps its cap reservation."""

EnrollmentStatus = Literal["active", "completed", "converted", "exited", "stopped"]
"""completed: reached an exit step; converted: the goal event ended it; exited: an exit_on event;
stopped: an operator stopped the journey."""

JourneyState = Literal["active", "paused", "stopped", "archived"]
"""active: entries and sends go on; paused: no entries, live runs hold before their next send;
stopped: every run ended, nothing more is sent; archived: stopped and hidden from lists."""

Category = Literal["marketing", "transactional"]


@dataclass(frozen=True)
class Profile:
    id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    timezone: str = "Asia/Shanghai"
    locale: str = "zh-CN"


SubscriptionStatus = Literal["subscribed", "unsubscribed"]


@dataclass(frozen=True)
class Subscription:
    """A person's consent for one channel; no row means subscribed (the brand's default)."""

    profile_id: str
    channel: str
    status: SubscriptionStatus
    source: str
    """Where it was set: ``api``, ``unsubscribe_link``, ``import``..."""
    updated_at: datetime


@dataclass(frozen=True)
class Event:
    event_id: str
    profile_id: str
    name: str
    occurred_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JourneyVersion:
    journey_id: str
    version: int
    content_hash: str
    definition: dict[str, Any]
    """The journey as ``Journey.model_dump(mode="json", by_alias=True)``."""
    templates: dict[str, dict[str, str]]
    """Template name -> content field (``text``, ``subject``...) -> Jinja source (deploy time)."""
    deployed_at: datetime
    source: str = ""


@dataclass(frozen=True)
class Enrollment:
    id: str
    journey_id: str
    journey_version: int
    profile_id: str
    entered_at: datetime
    status: EnrollmentStatus = "active"
    ended_at: datetime | None = None
    exit_step: str | None = None
    exit_reason: str | None = None
    """Why the run ended: the exit step's ``reason``, the goal or exit_on event's name, or the
    cap rule that ended it; None for an exit step without a reason."""
    path: tuple[str, ...] = ()
    """Step ids in the order the run visited them, written when the run ends."""
    variants: dict[str, str] = field(default_factory=dict)
    """Split step id -> variant the person landed in."""


@dataclass(frozen=True)
class EnrollmentEnd:
    """How a run ended, as its enrollment records it (``Store.finish_enrollments``)."""

    enrollment_id: str
    status: EnrollmentStatus
    ended_at: datetime
    exit_step: str | None
    path: tuple[str, ...]
    variants: dict[str, str] = field(default_factory=dict)
    exit_reason: str | None = None


@dataclass(frozen=True)
class Delivery:
    send_key: str
    """Made by the workflow; one delivery row per key, whatever the retries."""
    journey_id: str
    journey_version: int
    profile_id: str
    step_id: str
    channel: str
    template: str
    category: Category
    status: DeliveryStatus
    created_at: datetime
    reason: str | None = None
    provider_message_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JourneyControl:
    """An operator's change of a journey's state: who (the API key's name, or ``cli``), when,
    why."""

    journey_id: str
    state: JourneyState
    changed_at: datetime
    changed_by: str
    reason: str | None = None


@dataclass(frozen=True)
class EntryRefusal:
    """An entry the journey's state refused (paused, stopped): shown by ``journey why``."""

    journey_id: str
    profile_id: str
    at: datetime
    reason: str
