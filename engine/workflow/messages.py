"""Inputs and results of the journey workflow, its signal, query and activities.

One frozen model per message so fields can be added with defaults without breaking runs in flight.
They travel through Temporal with the pydantic data converter.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.domain import Category, EnrollmentStatus
from engine.dsl.conditions import Condition
from engine.dsl.models import Cap, Journey, Update, WebhookTarget

SendStatus = Literal[
    "sent", "suppressed", "deferred", "failed", "expired", "unknown", "arbitrating"
]
"""The delivery statuses (not ``attempting``: an activity never ends on it), plus
``arbitrating``: wait until ``retry_at`` and ask again."""


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunCarry(Message):
    """What a run hands on when it continues as new (a long or looping journey), so the person's
    journey goes on as one run: same step counts (send keys stay unique), variants, goal window
    and clock. Bounded: the path keeps its last steps, the event ids their most recent."""

    step: str
    """The step to go on with (not yet started)."""
    visits: dict[str, int]
    variants: dict[str, str] = Field(default_factory=dict)
    path: list[str] = Field(default_factory=list)
    """The most recent steps, oldest first."""
    earlier: list[str] = Field(default_factory=list)
    """The distinct steps visited before ``path``, in first-visit order (the report counts who
    reached each step from the ledger path)."""
    dropped: int = 0
    """How many steps of the path were left out (kept as ``earlier`` when distinct)."""
    seen: list[str] = Field(default_factory=list)
    """The most recent event ids, so an event delivered again after the hand-over changes
    nothing."""
    entered: datetime
    """Workflow time when the first run of the chain started."""
    skipped: timedelta = timedelta(0)
    """What scaled waits compressed so far (the run's own clock)."""
    paused: bool = False
    runs: int = 1
    """This run's place in the chain of continued runs (the first is 1)."""


class JourneyInput(Message):
    """Pins the journey version: a redeploy never changes a run in flight."""

    journey: Journey
    version: int
    profile_id: str
    enrollment_id: str
    timezone: str = "Asia/Shanghai"
    time_scale: float = Field(1.0, gt=0)
    """Divides every wait (demos and rehearsals only)."""
    entered_at: datetime | None = None
    """The ledger's entry time, from which the goal window runs (runs started without it use
    their start time)."""
    carry: RunCarry | None = None
    """Set when an earlier run of the same enrollment continued as new."""
    journey_step_changes_only: bool = False
    """The run upserts ``JourneyStep`` only when it changes (the enroller starts runs with it
    set to their first resting step); runs started without it upsert at every rest."""


class EventSignal(Message):
    name: str
    event_id: str
    occurred_at: datetime
    """When the event happened: a goal event converts the run only if this falls in the goal
    window, however late it arrives."""
    properties: dict[str, Any] = Field(default_factory=dict)


class ControlSignal(Message):
    """An operator's command to a live run: ``pause`` holds it before its next send (waits go
    on), ``resume`` releases it, ``stop`` ends it at once with status ``stopped``."""

    action: Literal["pause", "resume", "stop"]
    reason: str | None = None


class RunState(Message):
    """What the `state` query returns: where the run is and what it waits for."""

    journey_id: str
    version: int
    step: str | None
    status: EnrollmentStatus
    waiting_for: str | None = None
    until: datetime | None = None
    path: list[str] = Field(default_factory=list)
    variants: dict[str, str] = Field(default_factory=dict)
    paused: bool = False
    """An operator paused the journey: the run holds before its next send."""


class RunResult(Message):
    status: EnrollmentStatus
    exit_step: str | None
    reason: str | None
    path: list[str]
    variants: dict[str, str]


class SendInput(Message):
    send_key: str
    journey_id: str
    version: int
    profile_id: str
    step_id: str
    channel: str
    template: str
    category: Category
    priority: int
    caps: list[Cap] = Field(default_factory=list)
    at: datetime
    """Workflow time of the attempt (simulated time when waits are scaled); the cap check uses
    it, never a clock of its own."""
    timezone: str
    tags: list[str] = Field(default_factory=list)
    first_attempt_at: datetime | None = None
    defer_allowed: bool = True
    """False when the step names ``on_suppressed``: a refusal takes that path at once."""
    webhook: WebhookTarget | None = None
    """The step's own webhook target, if it names one."""
    held: bool = False
    """An operator's pause held this send: a deferral asked again past its expiry is then
    expired even when a slot is free (it would go out late)."""


class GiveUpInput(Message):
    send: SendInput
    """The send whose retries ran out of time."""
    reason: str


class SendResult(Message):
    status: SendStatus
    reason: str | None = None
    retry_at: datetime | None = None
    provider_message_id: str | None = None
    exit_run: bool = False
    """The policy says a refused send ends the run."""


class BranchInput(Message):
    profile_id: str
    conditions: list[Condition]
    at: datetime | None = None
    """The run's own clock: event windows, RFM and lifecycle are judged at this time."""


class BranchResult(Message):
    index: int | None
    """Index of the first condition that matched, or None."""


class UpdateInput(Message):
    profile_id: str
    update: Update


class FinishInput(Message):
    enrollment_id: str
    status: EnrollmentStatus
    exit_step: str | None
    path: list[str]
    variants: dict[str, str]
    ended_at: datetime
    reason: str | None = None
    """Why the run ended: the exit step's ``reason``, the goal or ``exit_on`` event, the cap
    rule that ended it."""
