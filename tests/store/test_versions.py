from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from engine.store import Store, VersionNotFound

from .conftest import Target

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
TEMPLATES = {"cart_a": {"text": "Hi {{ profile.name }}", "subject": "Your cart"}}


async def _deploy(store: Store, content_hash: str, journey_id: str = "cart") -> tuple[int, bool]:
    version, created = await store.deploy_version(
        journey_id, content_hash, {"id": journey_id, "hash": content_hash}, TEMPLATES, "src", NOW
    )
    return version.version, created


async def test_same_content_keeps_its_version_and_new_content_gets_the_next(store: Store) -> None:
    assert await _deploy(store, "h1") == (1, True)
    assert await _deploy(store, "h1") == (1, False)
    assert await _deploy(store, "h2") == (2, True)
    assert await _deploy(store, "h1") == (1, False)
    assert await _deploy(store, "h1", journey_id="welcome") == (1, True)


async def test_a_deployed_version_round_trips(store: Store) -> None:
    definition = {"id": "cart", "steps": [{"id": "pause", "wait": "1h"}], "priority": 60}
    deployed, _ = await store.deploy_version("cart", "h1", definition, TEMPLATES, "id: cart", NOW)

    got = await store.get_version("cart", 1)

    assert got == deployed
    assert (got.definition, got.templates, got.source, got.deployed_at) == (
        definition,
        TEMPLATES,
        "id: cart",
        NOW,
    )


async def test_unknown_version_raises(store: Store) -> None:
    await _deploy(store, "h1")
    with pytest.raises(VersionNotFound):
        await store.get_version("cart", 2)
    with pytest.raises(VersionNotFound):
        await store.get_version("nope", 1)


async def test_latest_versions(store: Store) -> None:
    assert await store.latest_version("cart") is None
    assert await store.latest_versions() == []
    for h in ("h1", "h2", "h3"):
        await _deploy(store, h)
    await _deploy(store, "w1", journey_id="welcome")

    latest = await store.latest_version("cart")
    assert latest is not None and latest.version == 3
    assert [(v.journey_id, v.version) for v in await store.latest_versions()] == [
        ("cart", 3),
        ("welcome", 1),
    ]


async def test_concurrent_deploys_of_different_content_get_distinct_versions(
    store: Store, target: Target
) -> None:
    async with target.open() as other:
        results = await asyncio.gather(
            *(
                (store if i % 2 else other).deploy_version("cart", f"h{i}", {"i": i}, {}, "", NOW)
                for i in range(8)
            )
        )

    assert all(created for _, created in results)
    assert sorted(v.version for v, _ in results) == list(range(1, 9))
    for version, _ in results:
        assert (await store.get_version("cart", version.version)).content_hash == (
            version.content_hash
        )


async def test_concurrent_deploys_of_the_same_content_share_one_version(
    store: Store, target: Target
) -> None:
    async with target.open() as other:
        results = await asyncio.gather(
            *(
                (store if i % 2 else other).deploy_version("cart", "same", {}, {}, "", NOW)
                for i in range(6)
            )
        )

    assert [created for _, created in results].count(True) == 1
    assert {v.version for v, _ in results} == {1}
