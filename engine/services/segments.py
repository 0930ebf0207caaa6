"""Segment membership, evaluated in SQL over every stored profile.

    async for page in iter_members(store, segment.condition, now, rules=tiers):
        ...                                     # ids in id order, page by page (keyset)
    preview = await preview_segment(store, segment, now, rules=tiers)   # count + a sample

The condition is compiled once per evaluation (`engine.conditions.sql`), RFM cut points included,
so every page of one evaluation uses the same ``now`` and the same cut points; each page is its
own short query, so nothing is held open while a caller works through the members.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from engine.conditions.sql import SqlCompiler, members_query, prepare
from engine.dsl.conditions import Condition
from engine.dsl.errors import DslError, Problem
from engine.dsl.loader import load_segment
from engine.dsl.segments import Segment
from engine.dsl.tiers import Tiers
from engine.store import Store
from engine.store.tables import profiles

PAGE = 1000


async def iter_members(
    store: Store,
    condition: Condition,
    now: datetime,
    *,
    rules: Tiers | None = None,
    page_size: int = PAGE,
    after: str | None = None,
) -> AsyncIterator[list[str]]:
    """The ids of the profiles satisfying ``condition`` at ``now``, in id order, in pages of at
    most ``page_size``, starting after id ``after``. Raises UnknownTier."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    evaluation = await prepare(store, condition, now, rules or Tiers())
    where = SqlCompiler(store.dialect, evaluation).where(condition)
    while True:
        async with store.engine.connect() as conn:
            query = members_query(where, after=after, limit=page_size)
            page = list((await conn.execute(query)).scalars())
        if page:
            yield page
        if len(page) < page_size:
            return
        after = page[-1]


async def count_members(
    store: Store, condition: Condition, now: datetime, *, rules: Tiers | None = None
) -> int:
    """How many profiles satisfy ``condition`` at ``now``."""
    evaluation = await prepare(store, condition, now, rules or Tiers())
    where = SqlCompiler(store.dialect, evaluation).where(condition)
    async with store.engine.connect() as conn:
        query = select(func.count()).select_from(profiles).where(where)
        return int((await conn.execute(query)).scalar_one())


async def segment_members(
    store: Store, segment: Segment, *, now: datetime | None = None, rules: Tiers | None = None
) -> list[str]:
    """Ids of every stored profile in the segment at ``now`` (default: the current time), in
    id order."""
    at = now or datetime.now(UTC)
    members: list[str] = []
    async for page in iter_members(store, segment.condition, at, rules=rules):
        members.extend(page)
    return members


@dataclass(frozen=True)
class Preview:
    segment_id: str
    now: datetime
    count: int
    sample: list[str]
    """The first members in id order."""


async def preview_segment(
    store: Store,
    segment: Segment,
    now: datetime,
    *,
    rules: Tiers | None = None,
    sample: int = 10,
) -> Preview:
    """The segment's size at ``now`` and its first ``sample`` members."""
    count = await count_members(store, segment.condition, now, rules=rules)
    first: list[str] = []
    if sample > 0:
        async for page in iter_members(
            store, segment.condition, now, rules=rules, page_size=sample
        ):
            first = page
            break
    return Preview(segment.id, now, count, first)


def segment_path(journeys_dir: Path, segment_id: str) -> Path:
    """Where segment ``segment_id`` is defined: ``<journeys>/segments/<id>.yaml`` (or .yml)."""
    folder = journeys_dir / "segments"
    for suffix in (".yaml", ".yml"):
        path = folder / f"{segment_id}{suffix}"
        if path.exists():
            return path
    return folder / f"{segment_id}.yaml"


def find_segment(journeys_dir: Path, segment_id: str) -> Segment:
    """The segment ``segment_id`` of ``journeys_dir``. Raises DslError (missing file included),
    and when the file's id differs from its name."""
    segment = load_segment(segment_path(journeys_dir, segment_id))
    if segment.id != segment_id:
        raise DslError(
            [
                Problem(
                    str(segment_path(journeys_dir, segment_id)),
                    0,
                    0,
                    "id",
                    f"the file defines segment '{segment.id}', expected '{segment_id}'",
                )
            ]
        )
    return segment
