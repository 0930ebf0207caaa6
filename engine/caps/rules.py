"""Which limits apply to a send, and when a window frees: pure functions, no Redis.

A rule is a counter (a Redis sorted set of reservation times) and a limit over a window:

- rolling window of length P at time t: the reservations with time > t - P;
- calendar window of N days at time t: the reservations since local midnight N-1 days before t's
  local day, in the person's timezone (windows must be whole days).

Reservations stamped after t also count (times are the callers' workflow times and are nearly
monotonic; counting them is the conservative choice). When a rule refuses, it frees when its
oldest counted reservation that keeps the count at the limit leaves the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from engine.dsl.durations import format_duration
from engine.dsl.models import Cap
from engine.dsl.policy import CapRule, Policy
from engine.localtime import at_local, next_wall_time, parse_wall

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Rule:
    counter: str
    """Counter name within the person's keys: ``g`` global, ``c:<channel>``, ``t:<tag>``,
    ``j:<journey>``."""
    label: str
    """How the delivery log names it, e.g. ``global:1/1d`` or ``journey:cart-recovery:1/7d``."""
    max: int
    per: timedelta
    calendar: bool


def applicable_rules(
    policy: Policy,
    channel: str,
    tags: tuple[str, ...],
    journey_id: str,
    journey_caps: tuple[Cap, ...],
) -> list[Rule]:
    """Every limit a marketing send must pass, in the order they are reported."""
    calendar = policy.window == "calendar"

    def rules(counter: str, scope: str, caps: list[CapRule] | tuple[Cap, ...]) -> list[Rule]:
        return [
            Rule(counter, f"{scope}:{c.max}/{_fmt(c.per)}", c.max, c.per, calendar) for c in caps
        ]

    found = rules("g", "global", policy.caps.global_)
    found += rules(f"c:{channel}", f"channel:{channel}", policy.caps.channels.get(channel, []))
    for tag in tags:
        found += rules(f"t:{tag}", f"tag:{tag}", policy.caps.tags.get(tag, []))
    found += rules(f"j:{journey_id}", f"journey:{journey_id}", journey_caps)
    return found


def _fmt(per: timedelta) -> str:
    return format_duration(per)


def window_start(rule: Rule, at: datetime, zone: ZoneInfo) -> datetime:
    """The earliest reservation time still inside ``rule``'s window at ``at`` (inclusive)."""
    if not rule.calendar:
        return at - rule.per + timedelta(milliseconds=1)
    days = max(1, round(rule.per / DAY))
    return at_local(at.astimezone(zone).date() - timedelta(days=days - 1), time(), zone)


def frees_at(rule: Rule, blocking: datetime, zone: ZoneInfo) -> datetime:
    """When the reservation at ``blocking`` leaves ``rule``'s window."""
    if not rule.calendar:
        return blocking + rule.per
    days = max(1, round(rule.per / DAY))
    return at_local(blocking.astimezone(zone).date() + timedelta(days=days), time(), zone)


def longest(rules: list[Rule]) -> timedelta:
    return max((r.per for r in rules), default=DAY)


def quiet_until(policy: Policy, at: datetime, zone: ZoneInfo) -> datetime | None:
    """If ``at`` falls in the policy's quiet hours (person's local time), when they end: the
    next time the person's clock shows the end (see `engine.localtime` for daylight saving)."""
    quiet = policy.quiet_hours
    if quiet is None:
        return None
    start, end = parse_wall(quiet.from_), parse_wall(quiet.to)
    now = at.astimezone(zone).time()
    inside = (start <= now < end) if start <= end else (now >= start or now < end)
    if not inside:
        return None
    return next_wall_time(at, end, zone)
