from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from engine.store import Store
from engine.store.tables import segment_memberships

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


async def test_saving_members_replaces_them_and_keeps_when_people_entered(store: Store) -> None:
    assert await store.save_segment_members("vip", ["p1", "p2"], T0) == (2, 0)
    assert await store.save_segment_members("vip", ["p2", "p3", "p3"], T0 + timedelta(days=1)) == (
        1,
        1,
    )
    await store.save_segment_members("churned", ["p1"], T0)

    assert await store.segment_member_ids("vip") == ["p2", "p3"]
    assert await store.segment_member_ids("churned") == ["p1"]
    async with store.engine.connect() as conn:
        entered = dict(
            (
                await conn.execute(
                    select(
                        segment_memberships.c.profile_id, segment_memberships.c.entered_at
                    ).where(segment_memberships.c.segment_id == "vip")
                )
            ).all()
        )
    assert entered == {"p2": T0, "p3": T0 + timedelta(days=1)}
