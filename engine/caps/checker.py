"""The cap-check port: one atomic check-and-reserve per send, idempotent on the send key."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from engine.dsl.models import Cap


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


@dataclass(frozen=True)
class CapDecision:
    allowed: bool
    action: Literal["send", "defer", "skip", "exit"] = "send"
    rule: str | None = None
    """The rule that refused the send (e.g. ``global:1/1d``): delivery log, `journey why`."""
    retry_at: datetime | None = None
    """With ``defer``: when the window frees."""
    detail: dict[str, str] = field(default_factory=dict)


class CapChecker(Protocol):
    async def reserve(self, request: CapRequest) -> CapDecision:
        """Check every rule and reserve the touch if all allow; the same send key, same answer."""
        ...

    async def release(self, send_key: str, profile_id: str) -> None:
        """Give back a reservation whose send failed for good."""
        ...


class AllowAll:
    """Allows every send. Stands in until the Redis frequency-cap service plugs in."""

    async def reserve(self, request: CapRequest) -> CapDecision:
        return CapDecision(allowed=True)

    async def release(self, send_key: str, profile_id: str) -> None:
        return None
