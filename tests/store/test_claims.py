"""Entering the ledger atomically with the re-entry decision (Store.claim_enrollments)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from engine.domain import Enrollment
from engine.store import Store

from .conftest import Target

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def once(last: Enrollment | None) -> bool:
    return last is None


def not_live(last: Enrollment | None) -> bool:
    return last is None or last.status != "active"


async def test_ten_simultaneous_claims_under_once_make_one_enrollment(
    store: Store, target: Target
) -> None:
    # Separate stores: separate connection pools, as separate API processes would have.
    others = [target.open() for _ in range(4)]
    try:
        claimants = [store, *others] * 2
        claims = await asyncio.gather(
            *(s.claim_enrollments("welcome", 1, ["p1"], T0, once) for s in claimants)
        )
    finally:
        for other in others:
            await other.aclose()

    created = [c["p1"].created for c in claims if c["p1"].created is not None]
    assert len(created) == 1
    assert [e.id for e in await store.enrollments("welcome")] == [created[0].id]
    losers = [c["p1"] for c in claims if c["p1"].created is None]
    assert all(c.last is not None and c.last.id == created[0].id for c in losers)


async def test_a_batch_claim_enters_only_those_the_rule_allows(store: Store) -> None:
    await store.create_enrollment(Enrollment("old", "cart", 1, "p2", T0, status="completed"))
    await store.create_enrollment(Enrollment("live", "cart", 1, "p3", T0))
    await store.create_enrollment(Enrollment("older", "cart", 1, "p2", T0 - timedelta(days=9)))

    claims = await store.claim_enrollments(
        "cart", 2, ["p1", "p2", "p3", "p1"], T0 + timedelta(days=1), not_live
    )

    assert list(claims) == ["p1", "p2", "p3"]
    assert claims["p1"].last is None and claims["p1"].created is not None
    assert claims["p2"].last is not None and claims["p2"].last.id == "old"
    assert claims["p2"].created is not None and claims["p2"].created.journey_version == 2
    assert claims["p3"].created is None
    stored = {e.profile_id for e in await store.enrollments("cart") if e.entered_at > T0}
    assert stored == {"p1", "p2"}

    created = [c.created.id for c in claims.values() if c.created is not None]
    await store.delete_enrollments([*created, "unknown"])
    assert {e.id for e in await store.enrollments("cart")} == {"old", "live", "older"}
