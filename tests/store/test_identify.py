"""OneID in the store: identify finds, creates and merges people, in one transaction."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.domain import Delivery, Enrollment, Event, Profile
from engine.identity import Identity, identity
from engine.store import Store, oneid
from engine.store.tables import metadata

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

EMAIL = identity("email", "  Li.Lei@Example.COM ")
PHONE = identity("phone", "138 0013 8000")
MEMBER = identity("store_member_no", "M-0042")
WECOM = identity("wecom_external_id", "wmAbC123")


async def table_counts(store: Store) -> dict[str, int]:
    async with store.engine.connect() as conn:
        return {
            t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
            for t in metadata.sorted_tables
        }


async def table_rows(store: Store) -> dict[str, list[Any]]:
    async with store.engine.connect() as conn:
        return {
            t.name: sorted(repr(tuple(r)) for r in await conn.execute(select(t)))
            for t in metadata.sorted_tables
        }


def _event(event_id: str, profile_id: str, name: str = "page_viewed", minutes: int = 0) -> Event:
    return Event(event_id, profile_id, name, T0 + timedelta(minutes=minutes), {"n": minutes})


async def test_an_unknown_identity_creates_a_person_and_a_known_one_finds_them(
    store: Store,
) -> None:
    first = await store.identify([EMAIL], attributes={"first_name": "磊"}, at=T0)
    again = await store.identify(
        [identity("email", "li.lei@example.com")], attributes={"city": "上海"}, at=T0
    )

    assert first.created and not first.merged
    assert (again.profile_id, again.created, again.merged) == (first.profile_id, False, ())
    profile = await store.get_profile(first.profile_id)
    assert profile is not None
    assert profile.attributes == {"first_name": "磊", "city": "上海"}
    assert (profile.timezone, profile.locale) == ("Asia/Shanghai", "zh-CN")
    assert await store.identities_of(first.profile_id) == [Identity("email", "li.lei@example.com")]
    assert await store.find_profile_id(EMAIL) == first.profile_id
    assert await store.count_profiles() == 1


async def test_app_email_and_store_phone_become_one_person_with_their_events_and_runs(
    store: Store,
) -> None:
    app = await store.identify([EMAIL], attributes={"source": "app", "city": "北京"}, at=T0)
    shop = await store.identify(
        [PHONE],
        attributes={"source": "store", "tier": "gold"},
        add_tags=["vip"],
        at=T0 + timedelta(days=1),
    )
    await store.record_events([_event("e-app", app.profile_id), _event("e-shop", shop.profile_id)])
    await store.create_enrollment(Enrollment("en-app", "welcome", 1, app.profile_id, T0))
    await store.create_enrollment(Enrollment("en-shop", "cart", 2, shop.profile_id, T0))
    await store.record_delivery(
        Delivery("k1", "cart", 2, shop.profile_id, "s", "sms", "t", "marketing", "sent", T0)
    )

    both = await store.identify([EMAIL, PHONE], at=T0 + timedelta(days=2))

    assert both.profile_id == app.profile_id  # the oldest profile survives
    assert both.merged == (shop.profile_id,)
    assert await store.count_profiles() == 1
    profile = await store.get_profile(app.profile_id)
    assert profile is not None
    # The store profile was updated last, so its value wins a conflicting key.
    assert profile.attributes == {"source": "store", "city": "北京", "tier": "gold"}
    assert profile.tags == {"vip"}
    assert await store.identities_of(app.profile_id) == sorted([EMAIL, PHONE])
    assert {e.event_id for e in await store.events_for(app.profile_id)} == {"e-app", "e-shop"}
    assert await store.events_for(shop.profile_id) == []
    assert (await store.last_enrollment("cart", app.profile_id)) is not None
    assert [d.profile_id for d in await store.deliveries()] == [app.profile_id]

    # The merged id resolves to the survivor, for reads and for later events.
    merged_view = await store.get_profile(shop.profile_id)
    assert merged_view is not None and merged_view.id == app.profile_id
    [later] = await store.record_events([_event("e-later", shop.profile_id, minutes=5)])
    assert later.fresh and later.event.profile_id == app.profile_id
    assert await store.resolve_profile_ids([shop.profile_id, "x"]) == {
        shop.profile_id: app.profile_id,
        "x": "x",
    }
    assert await store.merged_ids([app.profile_id]) == {app.profile_id: [shop.profile_id]}
    updated = await store.update_profile(shop.profile_id, add_tags=["buyer"])
    assert updated.id == app.profile_id and updated.tags == {"vip", "buyer"}


async def test_a_three_way_merge_and_a_later_merge_of_the_survivor_resolve_in_one_step(
    store: Store,
) -> None:
    a = await store.identify([EMAIL], at=T0)
    b = await store.identify([PHONE], at=T0 + timedelta(hours=1))
    c = await store.identify([MEMBER], at=T0 + timedelta(hours=2))
    for n, pid in enumerate((a.profile_id, b.profile_id, c.profile_id)):
        await store.record_events([_event(f"e{n}", pid, minutes=n)])
        await store.create_enrollment(Enrollment(f"en{n}", "j", 1, pid, T0))

    abc = await store.identify([MEMBER, PHONE, EMAIL], at=T0 + timedelta(hours=3))

    assert abc.profile_id == a.profile_id
    assert set(abc.merged) == {b.profile_id, c.profile_id}
    assert await store.count_profiles() == 1
    assert [e.event_id for e in await store.events_for(a.profile_id)] == ["e0", "e1", "e2"]
    assert {e.profile_id for e in await store.enrollments("j")} == {a.profile_id}
    assert await store.identities_of(c.profile_id) == sorted([EMAIL, PHONE, MEMBER])

    # An older person known by WeCom meets the survivor: the chain is flattened.
    older = await store.identify([WECOM], at=T0 - timedelta(days=30))
    final = await store.identify([WECOM, identity("email", "LI.LEI@example.com")], at=T0)
    assert final.profile_id == older.profile_id
    assert final.merged == (a.profile_id,)
    resolved = await store.resolve_profile_ids([a.profile_id, b.profile_id, c.profile_id])
    assert set(resolved.values()) == {older.profile_id}
    assert sorted((await store.merged_ids([older.profile_id]))[older.profile_id]) == sorted(
        [a.profile_id, b.profile_id, c.profile_id]
    )


async def test_consent_follows_the_latest_change_and_a_tie_keeps_the_unsubscribe(
    store: Store,
) -> None:
    a = await store.identify([EMAIL], at=T0)
    b = await store.identify([PHONE], at=T0 + timedelta(hours=1))
    await store.set_subscription(a.profile_id, "sms", "unsubscribed", "link", T0)
    await store.set_subscription(b.profile_id, "sms", "subscribed", "api", T0 + timedelta(days=1))
    await store.set_subscription(a.profile_id, "email", "unsubscribed", "link", T0)
    await store.set_subscription(b.profile_id, "email", "subscribed", "api", T0)
    await store.set_subscription(b.profile_id, "wecom", "unsubscribed", "api", T0)

    await store.identify([EMAIL, PHONE], at=T0 + timedelta(days=2))

    subs = await store.subscriptions(b.profile_id)  # a merged id reads the survivor's
    assert {channel: s.status for channel, s in subs.items()} == {
        "sms": "subscribed",
        "email": "unsubscribed",
        "wecom": "unsubscribed",
    }
    assert await store.is_unsubscribed(b.profile_id, "wecom")
    await store.set_subscription(b.profile_id, "push", "unsubscribed", "api", T0)
    assert await store.is_unsubscribed(a.profile_id, "push")


async def test_a_named_profile_id_takes_its_anonymous_events_into_the_person(
    store: Store,
) -> None:
    await store.record_events([_event("anon-1", "device-77")])
    known = await store.identify([EMAIL], at=T0)
    await store.upsert_profiles([Profile("crm-1", {"plan": "basic"})])

    first = await store.identify([EMAIL], profile_id="device-77", at=T0 + timedelta(hours=1))
    assert (first.profile_id, first.merged) == (known.profile_id, ("device-77",))
    assert [e.event_id for e in await store.events_for(known.profile_id)] == ["anon-1"]

    fresh = await store.identify([PHONE], profile_id="app-9", timezone="Europe/Berlin", at=T0)
    assert (fresh.profile_id, fresh.created) == ("app-9", True)
    profile = await store.get_profile("app-9")
    assert profile is not None and profile.timezone == "Europe/Berlin"


async def test_a_failure_half_way_through_a_merge_writes_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await store.identify([EMAIL], attributes={"x": 1}, at=T0)
    b = await store.identify([PHONE], at=T0 + timedelta(hours=1))
    await store.record_events([_event("e1", b.profile_id)])
    await store.set_subscription(b.profile_id, "sms", "unsubscribed", "link", T0)
    before = await table_rows(store)
    real = oneid._absorb

    async def absorb_then_fail(*args: Any, **kwargs: Any) -> None:
        await real(*args, **kwargs)
        raise RuntimeError("power cut")

    monkeypatch.setattr(oneid, "_absorb", absorb_then_fail)
    with pytest.raises(RuntimeError, match="power cut"):
        await store.identify([EMAIL, PHONE, MEMBER], attributes={"y": 2})

    assert await table_rows(store) == before
    assert await store.resolve_profile_ids([b.profile_id]) == {b.profile_id: b.profile_id}
    assert a.profile_id != b.profile_id


async def test_concurrent_identifies_of_one_new_person_create_one_profile(store: Store) -> None:
    results = await asyncio.gather(*(store.identify([EMAIL, PHONE]) for _ in range(10)))

    assert len({r.profile_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert await store.count_profiles() == 1


async def test_concurrent_overlapping_merges_end_as_one_person(store: Store) -> None:
    ids = [identity("app_user_id", f"u{n}") for n in range(6)]
    for n, ident in enumerate(ids):
        await store.identify([ident], at=T0 + timedelta(minutes=n))

    # A ring of pairwise identifies, all at once: every pair overlaps two others.
    await asyncio.gather(
        *(store.identify([ids[n], ids[(n + 1) % len(ids)]]) for n in range(len(ids)))
    )

    assert await store.count_profiles() == 1
    owners = {await store.find_profile_id(ident) for ident in ids}
    assert len(owners) == 1
    counts = await table_counts(store)
    assert counts["merges"] == len(ids) - 1


async def test_identify_needs_an_identity_or_a_profile_id(store: Store) -> None:
    with pytest.raises(ValueError, match="at least one identity"):
        await store.identify([])
    with pytest.raises(ValueError, match="longer than 128"):
        await store.identify([], profile_id="x" * 129)
    assert await store.count_profiles() == 0


async def test_upserting_a_merged_id_writes_the_survivor(store: Store) -> None:
    a = await store.identify([EMAIL], at=T0)
    b = await store.identify([PHONE], at=T0 + timedelta(hours=1))
    await store.identify([EMAIL, PHONE])

    assert await store.upsert_profiles([Profile(b.profile_id, {"plan": "pro"})]) == 1

    assert await store.count_profiles() == 1
    profile = await store.get_profile(a.profile_id)
    assert profile is not None and profile.attributes == {"plan": "pro"}
