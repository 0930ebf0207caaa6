"""Times of day in a person's timezone, turned into instants: the one place that does it.

Python subtracts two datetimes that share a ``ZoneInfo`` as wall clocks, not as elapsed time, so
"10:00 tomorrow minus 20:00 today" across a daylight-saving change is off by the change. Every
computation here resolves a local wall time to an instant first and does arithmetic on UTC.

Rules, the same as RFC 5545 and JavaScript Temporal's ``compatible`` disambiguation:

- a wall time the clock skips (02:30 on a spring-forward day in New York) is moved forward by the
  length of the gap (03:30 local): the instant it would have been without the change;
- a wall time the clock shows twice (01:30 on a fall-back day) is the first of the two
  (``fold=0``), unless that one has already passed and the second is still ahead.

Pure and deterministic (tzdata is fixed for a given install), so the workflow uses it too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_DAY = timedelta(days=1)


def at_local(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The instant (UTC) when the clock in ``zone`` shows ``wall`` on ``day``: the first of two
    in a fold, moved forward by the gap in a gap."""
    return datetime.combine(day, wall, zone).replace(fold=0).astimezone(UTC)


def _occurrences(day: date, wall: time, zone: ZoneInfo) -> list[datetime]:
    """When ``wall`` happens on ``day`` in ``zone`` (UTC): one instant, or two in a fold."""
    naive = datetime.combine(day, wall)
    first = at_local(day, wall, zone)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    # fold=1 is a real second showing only when it reads back as the same wall time; in a gap
    # it is the time moved backwards, which the rules above do not use.
    if second != first and second.astimezone(zone).replace(tzinfo=None) == naive:
        return [first, second]
    return [first]


def next_wall_time(after: datetime, wall: time, zone: ZoneInfo) -> datetime:
    """The first instant strictly after ``after`` when the clock in ``zone`` shows ``wall``
    (UTC; gaps and folds as in the module's rules). ``after`` must be timezone-aware.

    ``next_wall_time(now, 10:00, zone) - now`` is the elapsed time to the next 10:00 local.
    """
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    today = after.astimezone(zone).date()
    # Yesterday too: a wall time late in the evening moved forward past midnight by a gap.
    for day in (today - _DAY, today, today + _DAY, today + 2 * _DAY):
        for instant in _occurrences(day, wall, zone):
            if instant > after:
                return instant
    raise AssertionError("unreachable: every day has an instant for every wall time")


def parse_wall(text: str) -> time:
    """``"HH:MM"`` as a time of day."""
    hour, minute = text.split(":")
    return time(int(hour), int(minute))
