"""Local wall times against a plain UTC walk of the clock, over many zones and dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.localtime import at_local, next_wall_time

pytestmark = pytest.mark.timeout(300)

MINUTE = timedelta(minutes=1)
NEW_YORK = ZoneInfo("America/New_York")
ZONES = sorted(available_timezones() - {"Factory", "localtime"})


def reference(after: datetime, wall: time, zone: ZoneInfo) -> datetime:
    """The first instant after ``after`` when the clock in ``zone`` shows ``wall``, found by
    walking UTC minute by minute and reading the clock (UTC -> local is never ambiguous).

    A step where the clock jumps forward over ``wall`` yields the instant ``wall`` would have
    been at the offset before the jump (the gap rule); a clock that shows ``wall`` twice yields
    both showings. The walk starts a day early: a jump just before ``after`` may move ``wall``
    past it."""
    u = after.replace(second=0, microsecond=0) - timedelta(days=1)
    before = u.astimezone(zone).replace(tzinfo=None)
    for _ in range(4 * 24 * 60):
        u += MINUTE
        now = u.astimezone(zone).replace(tzinfo=None)
        assume(now.second == 0)  # zones with second offsets (none since the 1970s) are skipped
        found: list[datetime] = []
        if now - before > MINUTE:  # the clock jumped forward
            for day in (before.date(), now.date()):
                skipped = datetime.combine(day, wall)
                if before < skipped < now:
                    found.append(u - MINUTE + (skipped - before))
        if now.time() == wall:
            found.append(u)
        found = [f for f in found if f > after]
        if found:
            return min(found)
        before = now
    raise AssertionError("no showing of the wall time within three days")


@cache
def transitions(zone_name: str, year: int) -> list[datetime]:
    """The instants in ``year`` when the zone's UTC offset changes (to the minute)."""
    zone = ZoneInfo(zone_name)
    found = []
    u = datetime(year, 1, 1, tzinfo=UTC)
    step = timedelta(hours=6)
    while u.year == year:
        if u.astimezone(zone).utcoffset() != (u + step).astimezone(zone).utcoffset():
            low, high = u, u + step
            while high - low > MINUTE:
                mid = low + (high - low) / 2
                if mid.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = mid
                else:
                    high = mid
            found.append(high)
        u += step
    return found


walls = st.builds(time, st.integers(0, 23), st.sampled_from([0, 1, 15, 29, 30, 45, 59]))
offsets = st.timedeltas(min_value=timedelta(hours=-36), max_value=timedelta(hours=36))


@st.composite
def near_a_change(draw: st.DrawFn) -> tuple[datetime, ZoneInfo]:
    """An instant within a day and a half of one of the zone's offset changes (most zones have
    none, so these are drawn where something happens)."""
    zone_name = draw(st.sampled_from(ZONES))
    year = draw(st.integers(1995, 2037))
    changes = transitions(zone_name, year)
    assume(changes)
    change = draw(st.sampled_from(changes))
    return change + draw(offsets), ZoneInfo(zone_name)


anywhere = st.builds(
    lambda zone, moment: (moment.replace(tzinfo=UTC), ZoneInfo(zone)),
    st.sampled_from(ZONES),
    st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2037, 12, 31)),
)


@settings(max_examples=300, deadline=None)
@given(near_a_change(), walls)
def test_next_wall_time_agrees_with_a_utc_walk_around_offset_changes(
    case: tuple[datetime, ZoneInfo], wall: time
) -> None:
    after, zone = case
    assert next_wall_time(after, wall, zone) == reference(after, wall, zone)


@settings(max_examples=100, deadline=None)
@given(anywhere, walls)
def test_next_wall_time_agrees_with_a_utc_walk_on_any_day(
    case: tuple[datetime, ZoneInfo], wall: time
) -> None:
    after, zone = case
    assert next_wall_time(after, wall, zone) == reference(after, wall, zone)


def ny(day: date, hour: int, minute: int = 0, fold: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), NEW_YORK).replace(fold=fold)


SPRING = date(2027, 3, 14)  # 02:00 EST -> 03:00 EDT
FALL = date(2027, 11, 7)  # 02:00 EDT -> 01:00 EST


def test_ten_o_clock_across_spring_forward_is_ten_local_fourteen_utc() -> None:
    target = next_wall_time(ny(SPRING - timedelta(days=1), 20), time(10), NEW_YORK)
    assert target == datetime(2027, 3, 14, 14, 0, tzinfo=UTC)
    assert target - ny(SPRING - timedelta(days=1), 20) == timedelta(hours=13)  # not 14


def test_a_skipped_time_moves_forward_by_the_gap() -> None:
    target = next_wall_time(ny(SPRING, 0), time(2, 30), NEW_YORK)
    assert target.astimezone(NEW_YORK).time() == time(3, 30)
    assert at_local(SPRING, time(2, 30), NEW_YORK) == target


def test_a_repeated_time_is_the_first_showing_unless_it_has_passed() -> None:
    first = next_wall_time(ny(FALL, 0), time(1, 30), NEW_YORK)
    assert first == datetime(2027, 11, 7, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second = next_wall_time(ny(FALL, 1, 10, fold=1), time(1, 30), NEW_YORK)
    assert second == datetime(2027, 11, 7, 6, 30, tzinfo=UTC)  # 01:30 EST, 20 minutes later


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_wall_time(datetime(2027, 1, 1), time(10), NEW_YORK)
