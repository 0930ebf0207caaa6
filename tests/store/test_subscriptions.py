from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.store import Store

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


async def test_no_row_means_subscribed(store: Store) -> None:
    assert await store.is_unsubscribed("p1", "sms") is False
    assert await store.subscriptions("p1") == {}


async def test_unsubscribe_then_resubscribe_keeps_the_latest(store: Store) -> None:
    await store.set_subscription("p1", "sms", "unsubscribed", "unsubscribe_link", T0)
    assert await store.is_unsubscribed("p1", "sms") is True
    assert await store.is_unsubscribed("p1", "email") is False

    later = T0 + timedelta(days=1)
    await store.set_subscription("p1", "sms", "subscribed", "api", later)
    [(channel, sub)] = (await store.subscriptions("p1")).items()
    assert (channel, sub.status, sub.source, sub.updated_at) == ("sms", "subscribed", "api", later)
    assert await store.is_unsubscribed("p1", "sms") is False
