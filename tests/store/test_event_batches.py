"""Recording batches of events: one transaction, duplicates, and delivery that is retried until it
completes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from engine.domain import Event
from engine.store import Store

from .conftest import Target

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _event(event_id: str, name: str = "page_viewed", profile_id: str = "p1") -> Event:
    return Event(event_id, profile_id, name, T0, {"id": event_id})


async def test_a_batch_reports_fresh_duplicate_and_pending_per_item(store: Store) -> None:
    await store.record_events([_event("old")])
    batch = [
        _event("a", "order_paid"),
        _event("old"),
        _event("b"),
        _event("a", "order_paid"),
    ]

    results = await store.record_events(batch, pending_names={"order_paid"})

    assert [(r.event.event_id, r.fresh, r.pending) for r in results] == [
        ("a", True, True),
        ("old", False, False),
        ("b", True, False),
        ("a", False, False),
    ]
    assert [e.event_id for e in await store.events_for("p1")] == ["old", "a", "b"]


async def test_an_undelivered_event_is_pending_again_until_marked_delivered(store: Store) -> None:
    [first] = await store.record_events([_event("pay", "order_paid")], pending_names={"order_paid"})
    assert first.pending

    # Resent (the first delivery failed): still stored once, but delivery is outstanding.
    [resent] = await store.record_events([_event("pay", "order_paid")], pending_names=set())
    assert (resent.fresh, resent.pending) == (False, True)
    assert resent.event == first.event
    assert [e.event_id for e in await store.undelivered_events(T0 + timedelta(days=999))] == ["pay"]

    await store.mark_delivered(["pay"], T0)
    [again] = await store.record_events([_event("pay", "order_paid")], pending_names={"order_paid"})
    assert (again.fresh, again.pending) == (False, False)
    assert await store.undelivered_events(T0 + timedelta(days=999)) == []


async def test_record_event_still_returns_whether_it_was_new(store: Store) -> None:
    assert await store.record_event(_event("x")) is True
    assert await store.record_event(_event("x")) is False
    assert await store.undelivered_events(T0 + timedelta(days=999)) == []


async def test_a_batch_with_a_naive_time_writes_nothing(store: Store) -> None:
    naive = Event("n", "p1", "x", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        await store.record_events([_event("ok"), naive])
    assert await store.events_for("p1") == []


async def test_a_batch_of_a_thousand_is_stored_in_one_call(store: Store) -> None:
    batch = [_event(f"e{n:04d}", profile_id=f"p{n % 7}") for n in range(1000)]
    results = await store.record_events(batch)
    assert all(r.fresh and not r.pending for r in results)
    assert len(await store.events_for("p3")) == len([n for n in range(1000) if n % 7 == 3])


async def test_the_same_event_sent_at_once_by_many_writers_is_fresh_exactly_once(
    store: Store, target: Target
) -> None:
    others = [target.open() for _ in range(4)]
    batch = [_event("same", "order_paid"), _event("other")]
    try:
        writers = [store, *others] * 2
        results = await asyncio.gather(
            *(w.record_events(batch, pending_names={"order_paid"}) for w in writers)
        )
    finally:
        for other in others:
            await other.aclose()
    assert sum(r[0].fresh for r in results) == 1
    assert sum(r[1].fresh for r in results) == 1
    assert len(await store.events_for("p1")) == 2
