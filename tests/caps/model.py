"""A reference model of the contact policy's caps, in plain Python, for the property tests.

Written from the documented semantics (DESIGN.md "Frequency caps"), not from engine/caps:
times are integer milliseconds since the epoch, a person's touches are a plain list, and every
question is answered by scanning that list.

- A rolling window of length P at time t holds the touches with time > t - P, including touches
  stamped after t.
- A calendar window of N days at time t holds the touches since the start of the local day N-1
  days before t's local day (the person's timezone). A local day starts at the first instant whose
  local date is that day (midnight, or the end of a DST gap that swallows midnight).
- A provider quota on a channel (max per calendar day, week from Monday, or month, in the
  provider's timezone, or the person's when it has none) holds the channel's touches since the
  start of the period that contains t; it applies whatever the policy says about the channel.
- A send is allowed when every rule that applies has fewer than ``max`` touches in its window;
  else the first refusing rule in the order global, channel, the channel's quota, tags (request
  order), journey is reported, with the count in its window and when it frees: when the touch
  that keeps the count at the limit leaves the window (rolling: its time + P; calendar: the
  start of the local day N days after its local day; quota: the start of the period after its
  period).
- A send key answers once: a repeat gets the first answer and never counts twice. Releasing an
  allowed send removes its touch.
- A OneID merge makes two people one: the merged person's touches become the survivor's; a send
  key it allowed keeps its answer, one it refused is decided afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from engine.dsl.durations import format_duration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS_PER_DAY = 86_400_000


def to_ms(at: datetime) -> int:
    """Exact milliseconds since the epoch (no float on the way)."""
    return (at - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def local_date(ms: int, zone: ZoneInfo) -> date:
    return from_ms(ms).astimezone(zone).date()


def day_start(day: date, zone: ZoneInfo) -> int:
    """The first millisecond whose local date is ``day`` or later (bisection on the clock)."""
    guess = (datetime(day.year, day.month, day.day, tzinfo=UTC) - EPOCH) // timedelta(
        milliseconds=1
    )
    low, high = guess - 2 * MS_PER_DAY, guess + 2 * MS_PER_DAY
    assert local_date(low, zone) < day <= local_date(high, zone)
    while high - low > 1:
        middle = (low + high) // 2
        if local_date(middle, zone) >= day:
            high = middle
        else:
            low = middle
    return high


@dataclass(frozen=True)
class Limit:
    scope: str
    """``global``, ``channel``, ``quota`` (a channel's provider quota), ``tag`` or ``journey``."""
    name: str | None
    max: int
    per: timedelta
    period: str | None = None
    """A quota's period: ``day``, ``week`` or ``month``."""
    zone: ZoneInfo | None = None
    """A quota's timezone; None: the person's."""

    @property
    def label(self) -> str:
        if self.scope == "quota":
            return f"quota:{self.name}:{self.max}/{self.period}"
        where = self.scope if self.name is None else f"{self.scope}:{self.name}"
        return f"{where}:{self.max}/{format_duration(self.per)}"


@dataclass(frozen=True)
class Send:
    key: str
    at: int
    channel: str
    journey: str
    tags: tuple[str, ...] = ()
    journey_caps: tuple[tuple[int, timedelta], ...] = ()
    """(max, per) of the journey's own caps."""


@dataclass(frozen=True)
class Answer:
    allowed: bool
    rule: str | None = None
    count: int | None = None
    retry_at: int | None = None


@dataclass
class CapModel:
    zone: ZoneInfo
    calendar: bool = False
    global_caps: list[tuple[int, timedelta]] = field(default_factory=list)
    channel_caps: dict[str, list[tuple[int, timedelta]]] = field(default_factory=dict)
    tag_caps: dict[str, list[tuple[int, timedelta]]] = field(default_factory=dict)
    quotas: dict[str, tuple[int, str, str | None]] = field(default_factory=dict)
    """Channel -> (max, period, timezone name or None) of its provider quota."""
    touches: dict[str, Send] = field(default_factory=dict)
    """Allowed, not released sends by key."""
    answers: dict[str, Answer] = field(default_factory=dict)

    def limits(self, send: Send) -> list[Limit]:
        found = [Limit("global", None, m, p) for m, p in self.global_caps]
        found += [
            Limit("channel", send.channel, m, p) for m, p in self.channel_caps.get(send.channel, [])
        ]
        if send.channel in self.quotas:
            most, period, zone = self.quotas[send.channel]
            where = ZoneInfo(zone) if zone else None
            found.append(Limit("quota", send.channel, most, timedelta(0), period, where))
        for tag in send.tags:
            found += [Limit("tag", tag, m, p) for m, p in self.tag_caps.get(tag, [])]
        found += [Limit("journey", send.journey, m, p) for m, p in send.journey_caps]
        return found

    def _applies(self, limit: Limit, touch: Send) -> bool:
        if limit.scope == "global":
            return True
        if limit.scope in ("channel", "quota"):
            return touch.channel == limit.name
        if limit.scope == "tag":
            return limit.name in touch.tags
        return touch.journey == limit.name

    def _days(self, limit: Limit) -> int:
        days, rest = divmod(limit.per, timedelta(days=1))
        assert rest == timedelta(0) and days >= 1, "calendar windows are whole days"
        return days

    def _period(self, limit: Limit, ms: int) -> tuple[date, date]:
        """The first local day of the quota period holding ``ms``, and of the next period."""
        day = local_date(ms, limit.zone or self.zone)
        if limit.period == "day":
            return day, day + timedelta(days=1)
        if limit.period == "week":
            monday = day - timedelta(days=day.weekday())
            return monday, monday + timedelta(days=7)
        first = date(day.year, day.month, 1)
        following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        return first, following

    def _inside(self, limit: Limit, at: int, touch: int) -> bool:
        if limit.period is not None:
            return touch >= day_start(self._period(limit, at)[0], limit.zone or self.zone)
        if self.calendar:
            first = local_date(at, self.zone) - timedelta(days=self._days(limit) - 1)
            return touch >= day_start(first, self.zone)
        return touch > at - limit.per // timedelta(milliseconds=1)

    def _in_window(self, limit: Limit, at: int) -> list[int]:
        return sorted(
            t.at
            for t in self.touches.values()
            if self._applies(limit, t) and self._inside(limit, at, t.at)
        )

    def _frees(self, limit: Limit, blocking: int) -> int:
        if limit.period is not None:
            return day_start(self._period(limit, blocking)[1], limit.zone or self.zone)
        if self.calendar:
            day = local_date(blocking, self.zone) + timedelta(days=self._days(limit))
            return day_start(day, self.zone)
        return blocking + limit.per // timedelta(milliseconds=1)

    def reserve(self, send: Send) -> Answer:
        if send.key in self.answers:
            return self.answers[send.key]
        answer = Answer(allowed=True)
        for limit in self.limits(send):
            times = self._in_window(limit, send.at)
            if len(times) >= limit.max:
                # The count drops below max once the touch at index count - max has left.
                blocking = times[len(times) - limit.max]
                answer = Answer(False, limit.label, len(times), self._frees(limit, blocking))
                break
        if answer.allowed:
            self.touches[send.key] = send
        self.answers[send.key] = answer
        return answer

    def absorb(self, merged: CapModel) -> None:
        """``merged`` (another person) was merged into this one."""
        self.touches.update(merged.touches)
        self.answers.update({key: a for key, a in merged.answers.items() if a.allowed})

    def release(self, key: str) -> None:
        """Give the touch back; a retry of a released key is then decided afresh."""
        if self.touches.pop(key, None) is not None:
            self.answers.pop(key, None)
