"""Journey states, their history and refused entries, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.domain import Delivery, Enrollment
from engine.store import Store

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


async def test_the_newest_change_is_the_state_and_every_change_is_kept(store: Store) -> None:
    assert await store.journey_state("flash") == "active"  # never changed
    await store.set_journey_state("flash", "paused", T0, "api-key-1", "wrong coupon")
    await store.set_journey_state("other", "stopped", T0, "cli", None)
    await store.set_journey_state("flash", "active", T0 + timedelta(hours=1), "cli", None)

    assert await store.journey_state("flash") == "active"
    assert {j: c.state for j, c in (await store.journey_controls()).items()} == {
        "flash": "active",
        "other": "stopped",
    }
    history = await store.control_history("flash")
    assert [(c.state, c.changed_by, c.reason) for c in history] == [
        ("paused", "api-key-1", "wrong coupon"),
        ("active", "cli", None),
    ]
    assert history[0].changed_at == T0


async def test_refused_entries_are_kept_per_person_in_time_order(store: Store) -> None:
    await store.record_entry_refusals("flash", ["p1", "p2", "p1"], T0, "journey_paused")
    await store.record_entry_refusals("other", ["p1"], T0 + timedelta(minutes=1), "journey_stopped")
    refusals = await store.entry_refusals("p1")
    assert [(r.journey_id, r.reason) for r in refusals] == [
        ("flash", "journey_paused"),
        ("other", "journey_stopped"),
    ]
    assert [r.journey_id for r in await store.entry_refusals("p2")] == ["flash"]


async def test_journey_activity_counts_live_runs_entries_and_sends_since(store: Store) -> None:
    for eid, entered in (("e1", T0 - timedelta(days=1)), ("e2", T0 + timedelta(hours=1))):
        await store.create_enrollment(Enrollment(eid, "flash", 1, f"p-{eid}", entered))
    sent = Delivery("k1", "flash", 1, "p-e2", "s", "sms", "t", "marketing", "sent", T0)
    await store.record_deliveries([sent])
    activity = await store.journey_activity(T0)
    assert (activity["flash"].live, activity["flash"].entered_since) == (2, 1)
    assert activity["flash"].sent_since == 1  # stamped when recorded (the store's clock)
