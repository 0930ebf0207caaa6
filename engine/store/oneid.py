"""OneID inside one transaction: find or create the person who owns some identities, merging the
profiles those identities (and an optional known profile id) belong to.

The merge rule (the survivor is the profile every merged id resolves to from then on):

- survivor: the oldest existing profile (``created_at``, then id); ids, links and running journeys
  made for it stay valid, and it is the id most systems already hold;
- identities, events, enrollments and deliveries of the others move to the survivor;
- attributes: the union; for a key several profiles have, the most recently updated profile's
  value wins; then the identify call's own attributes apply on top (``None`` deletes a key);
- tags: the union (plus the call's); timezone and locale: the call's, else the survivor's;
- subscriptions, per channel: the most recently changed consent wins; on a tie, unsubscribed;
- segment memberships: the survivor keeps its own and gains the others' (the next evaluation of
  each segment decides again);
- each merged id gets a ``merges`` row pointing at the survivor; rows that pointed at a merged id
  are re-pointed, so every merged id resolves to the final survivor in one lookup.

A profile id that has no profile row yet (events sent before the person was identified) may be
named; it takes part as an empty profile: its events move, and it resolves to the survivor.

``merge_ids`` (the Segment API's anonymous id and alias) overrides the survivor rule: the named
``profile_id`` (or the profile it already resolves to) survives and those ids merge into it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.identity import IdentifyResult, Identity
from engine.store import locks
from engine.store.filters import among
from engine.store.tables import (
    deliveries,
    enrollments,
    events,
    identities,
    merges,
    profiles,
    segment_memberships,
    subscriptions,
)

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_LOCALE = "zh-CN"
_MOVED = (events, enrollments, deliveries, identities)


async def resolve(conn: AsyncConnection, profile_ids: Iterable[str]) -> dict[str, str]:
    """Each merged id among ``profile_ids`` -> its survivor (ids never merged are absent)."""
    ids = sorted(set(profile_ids))
    found: dict[str, str] = {}
    for start in range(0, len(ids), 1000):
        rows = await conn.execute(
            select(merges.c.merged_id, merges.c.survivor_id).where(
                among(merges.c.merged_id, ids[start : start + 1000], conn.dialect.name)
            )
        )
        found.update({merged: survivor for merged, survivor in rows})
    return found


async def identify(
    conn: AsyncConnection,
    wanted: Sequence[Identity],
    *,
    profile_id: str | None,
    attributes: Mapping[str, Any],
    add_tags: Iterable[str],
    timezone: str | None,
    locale: str | None,
    at: datetime,
    merge_ids: Sequence[str] = (),
) -> IdentifyResult:
    """The whole identify, on ``conn`` inside its transaction (the caller commits or rolls
    back, so a failure half-way writes nothing)."""
    given = ([profile_id] if profile_id is not None else []) + list(merge_ids)
    await locks.lock_keys(
        conn,
        locks.IDENTITY,
        [f"{i.type}\x1f{i.value}" for i in wanted] + [profile_key(p) for p in given],
    )
    # Lock every profile involved, then look again: a concurrent identify may have merged one
    # of them away before we held its lock. Locks only accumulate, so this ends.
    locked: set[str] = set(given)
    while True:
        survivors = await resolve(conn, given)
        named = None if profile_id is None else survivors.get(profile_id, profile_id)
        owned = await _owners(conn, wanted)
        involved = set(owned.values()) | {survivors.get(p, p) for p in given}
        if involved <= locked:
            break
        await locks.lock_keys(
            conn, locks.IDENTITY, [profile_key(p) for p in involved - locked], first=False
        )
        locked |= involved
    if len(involved) > 1:
        # A merge: wait out transactions writing rows for these ids, and hold new ones back,
        # so no event or profile row is written for an id after it has been merged away.
        await locks.merging(conn, "profiles", "events")
    existing = (
        (
            await conn.execute(
                select(profiles)
                .where(profiles.c.id.in_(sorted(involved)))
                .order_by(profiles.c.created_at, profiles.c.id)
            )
        ).all()
        if involved
        else []
    )

    if merge_ids and named is not None:
        survivor = named
    elif existing:
        survivor = existing[0].id
    elif named is not None:
        survivor = named
    else:
        survivor = uuid.uuid4().hex
    created = all(row.id != survivor for row in existing)
    losers = sorted(involved - {survivor})

    # Attributes: oldest update first, so the most recent one wins each key.
    merged_attributes: dict[str, Any] = {}
    tags: set[str] = set()
    for row in sorted(existing, key=lambda r: (r.updated_at, r.id)):
        merged_attributes.update(row.attributes)
        tags.update(row.tags)
    for key, value in attributes.items():
        if value is None:
            merged_attributes.pop(key, None)
        else:
            merged_attributes[key] = value
    tags.update(add_tags)
    base = next((row for row in existing if row.id == survivor), existing[0] if existing else None)
    values = {
        "attributes": merged_attributes,
        "tags": sorted(tags),
        "timezone": timezone or (base.timezone if base is not None else DEFAULT_TIMEZONE),
        "locale": locale or (base.locale if base is not None else DEFAULT_LOCALE),
        "updated_at": at,
    }
    if created:
        await conn.execute(insert(profiles).values(id=survivor, created_at=at, **values))
    else:
        await conn.execute(update(profiles).where(profiles.c.id == survivor).values(**values))

    if losers:
        await _absorb(conn, survivor, losers, at)

    new = [i for i in wanted if i not in owned]
    if new:
        await conn.execute(
            insert(identities),
            [
                {"type": i.type, "value": i.value, "profile_id": survivor, "created_at": at}
                for i in new
            ],
        )
    return IdentifyResult(profile_id=survivor, created=created, merged=tuple(losers))


def profile_key(profile_id: str) -> str:
    """The lock key of a profile id, for identify."""
    return f"\x1fprofile\x1f{profile_id}"


async def _owners(conn: AsyncConnection, wanted: Sequence[Identity]) -> dict[Identity, str]:
    if not wanted:
        return {}
    rows = await conn.execute(
        select(identities.c.type, identities.c.value, identities.c.profile_id).where(
            tuple_(identities.c.type, identities.c.value).in_([(i.type, i.value) for i in wanted])
        )
    )
    return {Identity(t, v): owner for t, v, owner in rows}


async def _absorb(conn: AsyncConnection, survivor: str, losers: list[str], at: datetime) -> None:
    """Move everything of ``losers`` to ``survivor`` and record the merges."""
    for table in _MOVED:
        await conn.execute(
            update(table).where(table.c.profile_id.in_(losers)).values(profile_id=survivor)
        )

    # Segment memberships: keep the survivor's row where both are members.
    survivor_segments = select(segment_memberships.c.segment_id).where(
        segment_memberships.c.profile_id == survivor
    )
    await conn.execute(
        delete(segment_memberships).where(
            segment_memberships.c.profile_id.in_(losers),
            segment_memberships.c.segment_id.in_(survivor_segments.scalar_subquery()),
        )
    )
    await conn.execute(
        update(segment_memberships)
        .where(segment_memberships.c.profile_id.in_(losers))
        .values(profile_id=survivor)
    )

    # Subscriptions: the latest consent per channel; unsubscribed on a tie.
    rows = (
        await conn.execute(
            select(subscriptions).where(subscriptions.c.profile_id.in_([survivor, *losers]))
        )
    ).all()
    chosen: dict[str, Any] = {}
    for row in rows:
        current = chosen.get(row.channel)
        rank = (row.updated_at, row.status == "unsubscribed")
        if current is None or rank > (current.updated_at, current.status == "unsubscribed"):
            chosen[row.channel] = row
    await conn.execute(
        delete(subscriptions).where(subscriptions.c.profile_id.in_([survivor, *losers]))
    )
    if chosen:
        await conn.execute(
            insert(subscriptions),
            [
                {
                    "profile_id": survivor,
                    "channel": row.channel,
                    "status": row.status,
                    "source": row.source,
                    "updated_at": row.updated_at,
                }
                for row in chosen.values()
            ],
        )

    await conn.execute(
        update(merges).where(merges.c.survivor_id.in_(losers)).values(survivor_id=survivor)
    )
    await conn.execute(
        insert(merges),
        [{"merged_id": loser, "survivor_id": survivor, "merged_at": at} for loser in losers],
    )
    await conn.execute(delete(profiles).where(profiles.c.id.in_(losers)))
