"""Segment memberships: who was in a segment at its last evaluation, and since when."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, insert, select

from engine.store import locks
from engine.store.columns import require_aware
from engine.store.core import CHUNK, StoreCore, chunks
from engine.store.tables import segment_memberships


class MembershipStore(StoreCore):
    """Segment memberships (see :class:`engine.store.Store`)."""

    async def save_segment_members(
        self, segment_id: str, profile_ids: Iterable[str], at: datetime
    ) -> tuple[int, int]:
        """Replace a segment's members with ``profile_ids`` (one evaluation's result), in one
        transaction; people already members keep their ``entered_at``. Returns (entered, left).
        """
        members = list(dict.fromkeys(profile_ids))
        async with self._transaction() as conn:
            await locks.lock_keys(conn, locks.SEGMENT, [segment_id])
            current = set(
                (
                    await conn.execute(
                        select(segment_memberships.c.profile_id).where(
                            segment_memberships.c.segment_id == segment_id
                        )
                    )
                ).scalars()
            )
            wanted = set(members)
            left = sorted(current - wanted)
            entered = [pid for pid in members if pid not in current]
            for chunk in chunks(left):
                await conn.execute(
                    delete(segment_memberships).where(
                        segment_memberships.c.segment_id == segment_id,
                        segment_memberships.c.profile_id.in_(chunk),
                    )
                )
            rows = [
                {"segment_id": segment_id, "profile_id": pid, "entered_at": require_aware(at)}
                for pid in entered
            ]
            for start in range(0, len(rows), CHUNK):
                await conn.execute(insert(segment_memberships), rows[start : start + CHUNK])
        return len(entered), len(left)

    async def segment_member_ids(self, segment_id: str) -> list[str]:
        """The segment's members as last saved, in id order."""
        query = (
            select(segment_memberships.c.profile_id)
            .where(segment_memberships.c.segment_id == segment_id)
            .order_by(segment_memberships.c.profile_id)
        )
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars())
