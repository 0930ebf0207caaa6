"""Segment membership, evaluated in Python over the stored profiles.

Good for thousands of profiles (the demo, previews); the SQL compilation of the same conditions
takes over for large stores.
"""

from __future__ import annotations

from engine.conditions.python import matches
from engine.dsl.segments import Segment
from engine.store import Store


async def segment_members(store: Store, segment: Segment) -> list[str]:
    """Ids of every stored profile that satisfies the segment's condition, in id order."""
    members: list[str] = []
    async for batch in store.iter_profiles(batch_size=1000):
        members.extend(p.id for p in batch if matches(segment.condition, p))
    return members
