from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from engine.domain import Event
from engine.store import Store

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SHANGHAI = timezone(timedelta(hours=8))


def _event(event_id: str, at: datetime, name: str = "order_paid", who: str = "p1") -> Event:
    return Event(event_id, who, name, at, {"amount": 199})


async def test_an_event_sent_twice_is_stored_once(store: Store) -> None:
    event = _event("e1", T0)

    assert await store.record_event(event) is True
    assert await store.record_event(event) is False

    assert await store.events_for("p1") == [event]


async def test_events_for_filters_by_name_and_since_oldest_first(store: Store) -> None:
    late = _event("late", T0 + timedelta(hours=2))
    early = _event("early", T0)
    other = _event("other", T0 + timedelta(hours=1), name="cart_added")
    for e in (late, early, other, _event("someone-else", T0, who="p2")):
        await store.record_event(e)

    assert await store.events_for("p1") == [early, other, late]
    assert await store.events_for("p1", name="order_paid") == [early, late]
    assert await store.events_for("p1", since=T0 + timedelta(hours=1)) == [other, late]


async def test_times_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    local = datetime(2026, 11, 20, 18, 30, 15, 123456, tzinfo=SHANGHAI)
    await store.record_event(_event("e", local))

    (stored,) = await store.events_for("p1")

    assert stored.occurred_at == local
    assert stored.occurred_at.tzinfo == UTC
    assert stored.occurred_at.hour == 10


async def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        await store.record_event(_event("e", datetime(2026, 11, 20, 10)))


async def test_goal_events_lists_times_for_every_requested_profile(store: Store) -> None:
    await store.record_event(_event("a2", T0 + timedelta(days=1)))
    await store.record_event(_event("a1", T0))
    await store.record_event(_event("b1", T0, who="p2", name="cart_added"))
    await store.record_event(_event("c1", T0, who="p3"))

    times = await store.goal_events("order_paid", ["p1", "p2"])

    assert times == {"p1": [T0, T0 + timedelta(days=1)], "p2": []}
