"""Which limits apply to a send, and when a window frees: pure functions, no Redis.

A rule is a counter (a Redis sorted set of reservation times) and a limit over a window:

- rolling window of length P at time t: the reservations with time > t - P;
- calendar window of N days at time t: the reservations since local midnight N-1 days before t's
  local day, in the person's timezone (windows must be whole days);
- provider period (a provider quota: WeCom's 4 group messages a month): the reservations since
  the start of t's calendar day, week (from Monday) or month, in the provider's timezone (or the
  person's, for a provider that counts in the recipient's).

Reservations stamped after t also count (times are the callers' workflow times and are nearly
monotonic; counting them is the conservative choice). When a rule refuses, it frees when its
oldest counted reservation that keeps the count at the limit leaves the window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from engine.dsl.durations import format_duration
from engine.dsl.models import Cap
from engine.dsl.policy import CapRule, Policy
from engine.localtime import at_local, next_wall_time, parse_wall

DAY = timedelta(days=1)

Period = Literal["day", "week", "month"]
PERIOD_LENGTH: dict[Period, timedelta] = {
    "day": DAY,
    "week": timedelta(days=7),
    "month": timedelta(days=31),
}
"""The longest each period can be (counters keep reservations at least that long)."""


@dataclass(frozen=True)
class ChannelQuota:
    """A provider's own limit per recipient on a channel, enforced on top of the policy."""

    max: int
    period: Period
    """A calendar period: the provider's count starts again at each period's start."""
    timezone: str | None = None
    """Where the provider's periods start (WeCom: Asia/Shanghai); None: the person's."""


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
    period: Period | None = None
    """Set for a provider quota: the window is this calendar period (``per`` its longest)."""
    zone: str | None = None
    """The timezone of ``period`` (None: the person's)."""

    @property
    def local(self) -> bool:
        """The window depends on a timezone (not a plain rolling window)."""
        return self.calendar or self.period is not None


def applicable_rules(
    policy: Policy,
    channel: str,
    tags: tuple[str, ...],
    journey_id: str,
    journey_caps: tuple[Cap, ...],
    quotas: Mapping[str, ChannelQuota] | None = None,
) -> list[Rule]:
    """Every limit a marketing send must pass, in the order they are reported. A channel's
    provider quota applies whatever the policy says about the channel (the stricter wins, as
    every rule must allow); it shares the channel's counter."""
    calendar = policy.window == "calendar"

    def rules(counter: str, scope: str, caps: list[CapRule] | tuple[Cap, ...]) -> list[Rule]:
        return [
            Rule(counter, f"{scope}:{c.max}/{_fmt(c.per)}", c.max, c.per, calendar) for c in caps
        ]

    found = rules("g", "global", policy.caps.global_)
    found += rules(f"c:{channel}", f"channel:{channel}", policy.caps.channels.get(channel, []))
    quota = (quotas or {}).get(channel)
    if quota is not None:
        found.append(
            Rule(
                f"c:{channel}",
                f"quota:{channel}:{quota.max}/{quota.period}",
                quota.max,
                PERIOD_LENGTH[quota.period],
                calendar=False,
                period=quota.period,
                zone=quota.timezone,
            )
        )
    for tag in tags:
        found += rules(f"t:{tag}", f"tag:{tag}", policy.caps.tags.get(tag, []))
    found += rules(f"j:{journey_id}", f"journey:{journey_id}", journey_caps)
    return found


def _fmt(per: timedelta) -> str:
    return format_duration(per)


def _period_start(period: Period, day: date) -> date:
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def _next_period(period: Period, day: date) -> date:
    start = _period_start(period, day)
    if period == "week":
        return start + timedelta(days=7)
    if period == "month":
        return (start + timedelta(days=31)).replace(day=1)
    return start + DAY


def window_start(rule: Rule, at: datetime, zone: ZoneInfo) -> datetime:
    """The earliest reservation time still inside ``rule``'s window at ``at`` (inclusive)."""
    if rule.period is not None:
        where = ZoneInfo(rule.zone) if rule.zone else zone
        return at_local(_period_start(rule.period, at.astimezone(where).date()), time(), where)
    if not rule.calendar:
        return at - rule.per + timedelta(milliseconds=1)
    days = max(1, round(rule.per / DAY))
    return at_local(at.astimezone(zone).date() - timedelta(days=days - 1), time(), zone)


def frees_at(rule: Rule, blocking: datetime, zone: ZoneInfo) -> datetime:
    """When the reservation at ``blocking`` leaves ``rule``'s window."""
    if rule.period is not None:
        where = ZoneInfo(rule.zone) if rule.zone else zone
        return at_local(_next_period(rule.period, blocking.astimezone(where).date()), time(), where)
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
