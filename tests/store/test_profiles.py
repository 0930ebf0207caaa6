from __future__ import annotations

import asyncio

import pytest

from engine.domain import Profile
from engine.store import ProfileNotFound, Store

from .conftest import Target


async def test_upsert_inserts_then_replaces(store: Store) -> None:
    first = Profile("p1", {"city": "上海", "spend": 120.5}, frozenset({"vip", "new"}))
    assert await store.upsert_profiles([first, Profile("p2")]) == 2
    assert await store.get_profile("p1") == first

    replaced = Profile("p1", {"spend": 300}, frozenset({"vip"}), "Europe/Paris", "fr-FR")
    assert await store.upsert_profiles([replaced]) == 1

    assert await store.get_profile("p1") == replaced
    assert await store.count_profiles() == 2


async def test_upsert_of_a_repeated_id_keeps_the_last(store: Store) -> None:
    written = await store.upsert_profiles([Profile("p", {"n": 1}), Profile("p", {"n": 2})])

    assert written == 1
    assert await store.get_profile("p") == Profile("p", {"n": 2})


async def test_profile_ids_longer_than_128_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="longer than 128"):
        await store.upsert_profiles([Profile("x" * 129)])
    await store.upsert_profiles([Profile("x" * 128)])
    assert await store.count_profiles() == 1


async def test_get_profiles_returns_only_those_that_exist(store: Store) -> None:
    await store.upsert_profiles([Profile(f"p{i}") for i in range(1500)])

    found = await store.get_profiles(["p1", "missing", "p1499", "p1"])

    assert sorted(found) == ["p1", "p1499"]
    assert found["p1"] == Profile("p1")
    assert await store.get_profile("missing") is None


async def test_update_merges_attributes_and_none_deletes(store: Store) -> None:
    await store.upsert_profiles([Profile("p", {"a": 1, "b": 2}, frozenset({"x", "y"}))])

    updated = await store.update_profile(
        "p", attributes={"a": None, "c": [1, 2]}, add_tags=["z"], remove_tags=["x", "absent"]
    )

    expected = Profile("p", {"b": 2, "c": [1, 2]}, frozenset({"y", "z"}))
    assert updated == expected
    assert await store.get_profile("p") == expected


async def test_update_of_unknown_profile_raises(store: Store) -> None:
    with pytest.raises(ProfileNotFound, match="nobody"):
        await store.update_profile("nobody", add_tags=["x"])


async def test_concurrent_updates_lose_nothing(store: Store, target: Target) -> None:
    await store.upsert_profiles([Profile("p")])
    async with target.open() as other:
        await asyncio.gather(
            *(
                (store if i % 2 else other).update_profile(
                    "p", attributes={f"k{i}": i}, add_tags=[f"t{i}"]
                )
                for i in range(20)
            )
        )

    profile = await store.get_profile("p")
    assert profile is not None
    assert profile.attributes == {f"k{i}": i for i in range(20)}
    assert profile.tags == {f"t{i}" for i in range(20)}


async def test_iteration_pages_through_every_profile_once_in_id_order(store: Store) -> None:
    ids = [f"user-{i:05d}" for i in range(2500)]
    await store.upsert_profiles([Profile(pid, {"i": n}) for n, pid in enumerate(reversed(ids))])

    batches = [batch async for batch in store.iter_profiles(batch_size=1000)]

    assert [len(b) for b in batches] == [1000, 1000, 500]
    assert [p.id for b in batches for p in b] == ids
    assert await store.count_profiles() == 2500


async def test_iteration_of_an_empty_store_yields_nothing(store: Store) -> None:
    assert [batch async for batch in store.iter_profiles()] == []


async def test_one_upsert_of_more_profiles_than_postgres_has_lock_slots_succeeds(
    store: Store,
) -> None:
    # max_locks_per_transaction (64) x max_connections (100) = 6,400 slots by default.
    many = [Profile(f"bulk-{n:05d}", {"n": n}) for n in range(7000)]
    assert await store.upsert_profiles(many) == 7000
    assert await store.count_profiles() == 7000
