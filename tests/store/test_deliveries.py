from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from engine.domain import Delivery
from engine.identity import identity
from engine.store import SendFacts, SendLookup, Store

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


async def test_a_batch_is_written_in_order_as_if_one_call_after_another(store: Store) -> None:
    sent = _delivery("k-sent")
    await store.record_delivery(sent)
    deferred = _delivery("k1", status="deferred", reason="quiet_hours", provider_message_id=None)
    then_sent = _delivery("k1", created_at=T0 + timedelta(hours=1), detail={"attempt": 2})
    fresh = [_delivery(f"n{i}", profile_id=f"p{i}") for i in range(1200)]  # more than a chunk

    stored = await store.record_deliveries(
        [deferred, _delivery("k-sent", status="failed", reason="x"), then_sent, *fresh]
    )

    # Each caller gets the row as its own write left it; the sent row stays sent.
    assert stored[:3] == [deferred, sent, replace(then_sent, created_at=T0)]
    assert stored[3:] == fresh
    assert await store.get_delivery("k1") == replace(then_sent, created_at=T0)
    assert await store.get_delivery("k-sent") == sent
    assert len(await store.deliveries()) == 2 + len(fresh)


async def test_send_facts_read_a_batch_through_merges_and_consent(store: Store) -> None:
    app = await store.identify([identity("email", "a@example.com")], at=T0)
    shop = await store.identify(
        [identity("phone", "13800138000")],
        attributes={"phone": "13800138000"},
        at=T0 + timedelta(minutes=1),  # younger, so merged into the app profile
    )
    await store.set_subscription(shop.profile_id, "sms", "unsubscribed", "api", T0)
    merged = await store.identify(
        [identity("email", "a@example.com"), identity("phone", "13800138000")],
        at=T0 + timedelta(minutes=2),
    )
    assert merged.merged == (shop.profile_id,)
    await store.record_delivery(_delivery("done", profile_id=app.profile_id))

    asks = [
        SendLookup("done", app.profile_id, "wecom"),
        SendLookup("new-sms", shop.profile_id, "sms"),  # merged id, consent moved with it
        SendLookup("new-email", shop.profile_id, "email"),
        SendLookup("nobody", "no-such-person", "sms"),
    ]
    facts = await store.send_facts(asks)

    survivor = await store.get_profile(app.profile_id)
    done = _delivery("done", profile_id=app.profile_id)
    # Both ids of the person carry the ids merged into it: the cap service folds their counters.
    shop_id = (shop.profile_id,)
    assert facts[asks[0]] == SendFacts(done, survivor, False, shop_id)
    assert facts[asks[1]] == SendFacts(None, survivor, True, shop_id)
    assert facts[asks[2]] == SendFacts(None, survivor, False, shop_id)
    assert facts[asks[3]] == SendFacts(None, None, False)


async def test_one_claim_per_send_key_and_unknown_only_for_a_lost_attempt(store: Store) -> None:
    def claim(attempt: str) -> Delivery:
        return _delivery("k1", status="attempting", provider_message_id=None, detail={"a": attempt})

    first = await store.record_delivery(claim("first"))
    assert first.detail == {"a": "first"}
    # A second claim finds the first: the row (the first claim) says it lost.
    assert (await store.record_delivery(claim("second"))).detail == {"a": "first"}

    lost = _delivery("k1", status="unknown", reason="interrupted", provider_message_id=None)
    assert (await store.record_delivery(lost)).status == "unknown"
    # No claim takes an unknown send: it may have reached the person.
    assert (await store.record_delivery(claim("third"))).status == "unknown"
    # The lost attempt's late answer is better knowledge than unknown.
    late = _delivery("k1")
    assert await store.record_delivery(late) == late

    # Unknown replaces only a claim, never a decided row.
    failed = _delivery("k2", status="failed", reason="provider:http_400", provider_message_id=None)
    await store.record_delivery(failed)
    assert await store.record_delivery(replace(lost, send_key="k2")) == failed


async def test_a_refused_claim_is_released_and_only_a_claim(store: Store) -> None:
    claim = _delivery("k1", status="attempting", provider_message_id=None, detail={})
    await store.record_delivery(claim)
    await store.release_attempt("k1")
    assert await store.get_delivery("k1") is None

    sent = _delivery("k2")
    await store.record_delivery(sent)
    await store.release_attempt("k2")
    assert await store.get_delivery("k2") == sent
