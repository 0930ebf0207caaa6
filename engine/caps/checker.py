"""The cap-check port: one atomic check-and-reserve per send, idempotent on the send key."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from engine.dsl.models import Budget, Cap

Action = Literal["send", "arbitrate", "defer", "expire", "skip", "exit"]
"""send: go ahead (reserved); arbitrate: wait until ``retry_at`` (the arbitration window's end)
and ask again with the same key; defer: wait until ``retry_at`` and ask again with a new key;
expire: a deferral would outlast its expiry; skip: take the step's suppressed path; exit: end
the run."""


class CapStoreUnavailable(RuntimeError):
    """The cap store cannot be reached: fail closed, retry later, never send unchecked."""


@dataclass(frozen=True)
class CapRequest:
    send_key: str
    profile_id: str
    journey_id: str
    channel: str
    priority: int
    at: datetime
    """Workflow time of the decision; a checker never reads a clock of its own."""
    timezone: str
    journey_caps: tuple[Cap, ...] = ()
    tags: tuple[str, ...] = ()
    """The message's categories (the journey's tags), for per-tag caps."""
    transactional: bool = False
    """Exempt from every rule, but counted."""
    first_attempt_at: datetime | None = None
    """When the send was first tried; a deferral may not outlast it by the policy's expiry."""
    defer_allowed: bool = True
    """False when the step names its own ``on_suppressed``: a refusal then skips at once."""
    held: bool = False
    """An operator's pause held the send: past its deferral's expiry it is expired, not sent."""
    merged_ids: tuple[str, ...] = ()
    """Ids a OneID merge folded into ``profile_id`` (the survivor): their touches, claims and
    reservations count as the survivor's before anything is decided."""
    value: int = 0
    """What the message is worth against a budget's max_value (the send step's ``value``)."""
    budget: Budget | None = None
    """The journey's own budget; the policy adds those of the journey's tags."""


@dataclass(frozen=True)
class CapDecision:
    allowed: bool
    action: Action = "send"
    rule: str | None = None
    """The rule that refused the send (e.g. ``global:1/1d``): delivery log, `journey why`."""
    retry_at: datetime | None = None
    detail: dict[str, str] = field(default_factory=dict)


class CapChecker(Protocol):
    async def reserve(self, request: CapRequest) -> CapDecision:
        """Check every rule and reserve the touch if all allow; the same send key, same answer.

        Raises CapStoreUnavailable when it cannot decide.
        """
        ...

    async def release(self, send_key: str, profile_id: str, budgets: tuple[str, ...] = ()) -> None:
        """Give back a reservation whose send failed for good (``profile_id``: the id it was
        reserved under, or the survivor it was merged into), and its share of ``budgets``
        (scopes, see `engine.caps.budgets.budget_scopes`)."""
        ...


class AllowAll:
    """Allows every send: for tests and set-ups without Redis."""

    async def reserve(self, request: CapRequest) -> CapDecision:
        return CapDecision(allowed=True)

    async def release(self, send_key: str, profile_id: str, budgets: tuple[str, ...] = ()) -> None:
        return None
