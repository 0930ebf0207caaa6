from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from engine.domain import Delivery
from engine.store import Store

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _delivery(send_key: str, **changes: object) -> Delivery:
    base = Delivery(
        send_key=send_key,
        journey_id="cart",
        journey_version=1,
        profile_id="p1",
        step_id="copy_a",
        channel="wecom",
        template="cart_a",
        category="marketing",
        status="sent",
        created_at=T0,
        provider_message_id="msg-1",
        detail={"attempt": 1},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_a_sent_delivery_is_never_overwritten(store: Store) -> None:
    sent = _delivery("k1")
    assert await store.record_delivery(sent) == sent

    retried = _delivery("k1", status="failed", reason="timeout", provider_message_id=None)
    assert await store.record_delivery(retried) == sent
    assert await store.get_delivery("k1") == sent


async def test_a_deferred_delivery_becomes_sent(store: Store) -> None:
    deferred = _delivery(
        "k1", status="deferred", reason="cap:global:1/7d", provider_message_id=None, detail={}
    )
    assert await store.record_delivery(deferred) == deferred

    sent = _delivery("k1", created_at=T0 + timedelta(hours=5), detail={"attempt": 2})
    stored = await store.record_delivery(sent)

    # The row keeps its creation time; everything about the outcome is the new one.
    assert stored == replace(sent, created_at=T0)
    assert await store.get_delivery("k1") == stored


async def test_deliveries_filter_and_come_oldest_first(store: Store) -> None:
    a = _delivery("a", created_at=T0 + timedelta(minutes=2))
    b = _delivery("b", created_at=T0, profile_id="p2")
    c = _delivery("c", created_at=T0 + timedelta(minutes=1), journey_id="welcome")
    for d in (a, b, c):
        await store.record_delivery(d)

    assert await store.deliveries() == [b, c, a]
    assert await store.deliveries(journey_id="cart") == [b, a]
    assert await store.deliveries(profile_id="p1") == [c, a]
    assert await store.deliveries(journey_id="cart", profile_id="p1") == [a]
    assert await store.get_delivery("missing") is None
