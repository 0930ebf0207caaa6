"""People in the store: profiles, OneID identities and merges, channel consent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from engine.domain import Profile, Subscription, SubscriptionStatus
from engine.identity import IdentifyResult, Identity
from engine.store import locks, oneid, records
from engine.store.columns import require_aware
from engine.store.core import CHUNK, StoreCore, chunks, survivor_of
from engine.store.errors import ProfileNotFound
from engine.store.filters import among
from engine.store.retry import retrying
from engine.store.tables import PROFILE_ID_MAX, identities, merges, profiles, subscriptions


class PeopleStore(StoreCore):
    """Profiles, identities and subscriptions (see :class:`engine.store.Store`)."""

    # -- profiles ----------------------------------------------------------------------------

    async def upsert_profiles(self, profiles_: Sequence[Profile]) -> int:
        """Insert profiles, or replace the attributes, tags, timezone and locale of existing ones.

        Returns how many distinct profiles were written (the last one wins for a repeated id).
        A merged id writes the profile it was merged into. Raises ``ValueError`` for an id
        longer than 128 characters, on every backend.
        """
        unique = {p.id: p for p in profiles_}
        for profile_id in unique:
            if len(profile_id) > PROFILE_ID_MAX:
                raise ValueError(f"profile id longer than {PROFILE_ID_MAX}: {profile_id[:40]!r}...")
        if not unique:
            return 0
        now = self._clock()
        stmt = self._insert(profiles)
        stmt = stmt.on_conflict_do_update(
            index_elements=[profiles.c.id],
            set_={
                "attributes": stmt.excluded.attributes,
                "tags": stmt.excluded.tags,
                "timezone": stmt.excluded.timezone,
                "locale": stmt.excluded.locale,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        async with self._transaction() as conn:
            # As for events: never write a profile id that a concurrent merge moves away.
            await locks.writing(conn, "profiles")
            survivors = await oneid.resolve(conn, unique)
            written = {survivors.get(pid, pid): p for pid, p in unique.items()}
            rows = [
                {
                    "id": pid,
                    "attributes": dict(p.attributes),
                    "tags": sorted(p.tags),
                    "timezone": p.timezone,
                    "locale": p.locale,
                    "created_at": now,
                    "updated_at": now,
                }
                for pid, p in written.items()
            ]
            for start in range(0, len(rows), CHUNK):
                await conn.execute(stmt, rows[start : start + CHUNK])
        return len(rows)

    async def get_profile(self, profile_id: str) -> Profile | None:
        """The profile, or None; a merged id gives the survivor's profile (its ``id`` differs)."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(profiles).where(profiles.c.id == survivor_of(profile_id)))
            ).one_or_none()
        return None if row is None else records.profile(row)

    async def get_profiles(self, profile_ids: Iterable[str]) -> dict[str, Profile]:
        """The profiles that exist among ``profile_ids``, keyed by the id asked for (missing
        ids are absent; a merged id maps to the survivor's profile)."""
        ids = list(dict.fromkeys(profile_ids))
        found: dict[str, Profile] = {}
        async with self._engine.connect() as conn:
            for chunk in chunks(ids):
                survivors = await oneid.resolve(conn, chunk)
                wanted = {pid: survivors.get(pid, pid) for pid in chunk}
                result = await conn.execute(
                    select(profiles).where(among(profiles.c.id, set(wanted.values()), self.dialect))
                )
                rows = {row.id: records.profile(row) for row in result}
                for asked, actual in wanted.items():
                    if actual in rows:
                        found[asked] = rows[actual]
        return found

    async def update_profile(
        self,
        profile_id: str,
        *,
        attributes: Mapping[str, Any] | None = None,
        add_tags: Iterable[str] = (),
        remove_tags: Iterable[str] = (),
    ) -> Profile:
        """Merge ``attributes`` into the profile (a ``None`` value deletes that attribute), add then
        remove tags (a tag in both ends up removed), atomically; returns the updated profile
        (the survivor's, for a merged id).

        Raises ``ProfileNotFound`` when there is no such profile.
        """
        async with self._transaction() as conn:
            # Writing the row first takes its write lock (a row lock on PostgreSQL, the database
            # write lock on SQLite) before we read it, so concurrent updates cannot lose each
            # other's changes; it is the portable form of SELECT ... FOR UPDATE.
            touched = await conn.execute(
                update(profiles)
                .where(profiles.c.id == survivor_of(profile_id))
                .values(updated_at=self._clock())
                .returning(profiles.c.id)
            )
            resolved = touched.scalar_one_or_none()
            if resolved is None:
                raise ProfileNotFound(profile_id)
            profile_id = resolved
            row = (await conn.execute(select(profiles).where(profiles.c.id == profile_id))).one()
            merged = dict(row.attributes)
            for key, value in (attributes or {}).items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            tags = (set(row.tags) | set(add_tags)) - set(remove_tags)
            await conn.execute(
                update(profiles)
                .where(profiles.c.id == profile_id)
                .values(attributes=merged, tags=sorted(tags))
            )
        return Profile(
            id=row.id,
            attributes=merged,
            tags=frozenset(tags),
            timezone=row.timezone,
            locale=row.locale,
        )

    async def iter_profiles(self, batch_size: int = 1000) -> AsyncIterator[list[Profile]]:
        """Every profile, in batches ordered by id (keyset pagination: stable and cheap however
        deep). Each batch is read in its own short connection, so a slow consumer holds none."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        after: str | None = None
        while True:
            query = select(profiles).order_by(profiles.c.id).limit(batch_size)
            if after is not None:
                query = query.where(profiles.c.id > after)
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
            if not rows:
                return
            yield [records.profile(row) for row in rows]
            if len(rows) < batch_size:
                return
            after = rows[-1].id

    async def count_profiles(self) -> int:
        async with self._engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(profiles))).scalar_one()
            )

    # -- OneID -------------------------------------------------------------------------------

    async def identify(
        self,
        identities_: Sequence[Identity],
        *,
        profile_id: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        add_tags: Iterable[str] = (),
        timezone: str | None = None,
        locale: str | None = None,
        at: datetime | None = None,
        merge_ids: Sequence[str] = (),
    ) -> IdentifyResult:
        """Find or create the person known by ``identities_`` (normalised: build them with
        ``engine.identity.identity``) and, optionally, by ``profile_id``; merge every profile
        they belong to into one; attach the identities; apply ``attributes`` (``None`` deletes a
        key), ``add_tags``, ``timezone`` and ``locale``.

        One transaction: a failure half-way writes nothing. The merge rule is in
        ``engine.store.oneid``. ``profile_id`` may name a profile that does not exist yet (it is
        created with that id, or merged as an empty profile). ``at`` stamps the profile and the
        merge records (default: the store's clock). ``merge_ids``: profile ids merged into
        ``profile_id``, which survives whatever its age (an anonymous visitor who signs in).
        Raises ``ValueError`` when there is neither an identity nor a profile id, or a profile
        id is too long.
        """
        wanted = sorted(set(identities_))
        if not wanted and profile_id is None:
            raise ValueError("identify needs at least one identity or a profile id")
        if merge_ids and profile_id is None:
            raise ValueError("merge_ids need the profile_id they merge into")
        for given in (profile_id, *merge_ids):
            if given is not None and len(given) > PROFILE_ID_MAX:
                raise ValueError(f"profile id longer than {PROFILE_ID_MAX}: {given[:40]!r}...")
        when = self._clock() if at is None else require_aware(at)
        async for attempt in retrying():
            with attempt:
                async with self._transaction() as conn:
                    return await oneid.identify(
                        conn,
                        wanted,
                        profile_id=profile_id,
                        attributes=attributes or {},
                        add_tags=add_tags,
                        timezone=timezone,
                        locale=locale,
                        at=when,
                        merge_ids=merge_ids,
                    )
        raise AssertionError("unreachable")  # pragma: no cover

    async def identities_of(self, profile_id: str) -> list[Identity]:
        """The person's identities (a merged id gives the survivor's), sorted."""
        query = (
            select(identities.c.type, identities.c.value)
            .where(identities.c.profile_id == survivor_of(profile_id))
            .order_by(identities.c.type, identities.c.value)
        )
        async with self._engine.connect() as conn:
            return [Identity(t, v) for t, v in await conn.execute(query)]

    async def find_profile_id(self, identity: Identity) -> str | None:
        """The id of the profile that owns ``identity`` (normalised), or None."""
        query = select(identities.c.profile_id).where(
            identities.c.type == identity.type, identities.c.value == identity.value
        )
        async with self._engine.connect() as conn:
            found: str | None = (await conn.execute(query)).scalar_one_or_none()
        return found

    async def resolve_profile_ids(self, profile_ids: Iterable[str]) -> dict[str, str]:
        """Every id of ``profile_ids`` -> the id it stands for now (the survivor for a merged
        id, itself otherwise)."""
        ids = list(dict.fromkeys(profile_ids))
        async with self._engine.connect() as conn:
            survivors = await oneid.resolve(conn, ids)
        return {pid: survivors.get(pid, pid) for pid in ids}

    async def merged_ids(self, profile_ids: Iterable[str]) -> dict[str, list[str]]:
        """For each of ``profile_ids`` (survivors), the ids merged into it, sorted; ids with
        none are absent. Runs started before a merge keep their old id's workflow id, so events
        for the survivor are also signalled to those."""
        ids = list(dict.fromkeys(profile_ids))
        found: dict[str, list[str]] = {}
        async with self._engine.connect() as conn:
            for chunk in chunks(ids):
                rows = await conn.execute(
                    select(merges.c.survivor_id, merges.c.merged_id)
                    .where(among(merges.c.survivor_id, chunk, self.dialect))
                    .order_by(merges.c.merged_id)
                )
                for survivor, merged in rows:
                    found.setdefault(survivor, []).append(merged)
        return found

    # -- subscriptions -----------------------------------------------------------------------

    async def set_subscription(
        self, profile_id: str, channel: str, status: SubscriptionStatus, source: str, at: datetime
    ) -> None:
        """Record consent for one channel (insert or replace); a merged id records it for the
        survivor."""
        values: dict[str, Any] = {
            "profile_id": survivor_of(profile_id),
            "channel": channel,
            "status": status,
            "source": source,
            "updated_at": require_aware(at),
        }
        stmt = self._insert(subscriptions).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[subscriptions.c.profile_id, subscriptions.c.channel],
            set_={k: v for k, v in values.items() if k not in ("profile_id", "channel")},
        )
        async with self._transaction() as conn:
            await conn.execute(stmt)

    async def subscriptions(self, profile_id: str) -> dict[str, Subscription]:
        """Channel -> the person's recorded consent (channels without a row are subscribed)."""
        query = select(subscriptions).where(subscriptions.c.profile_id == survivor_of(profile_id))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return {
            row["channel"]: Subscription(
                profile_id=row["profile_id"],
                channel=row["channel"],
                status=row["status"],
                source=row["source"],
                updated_at=row["updated_at"],
            )
            for row in rows
        }

    async def is_unsubscribed(self, profile_id: str, channel: str) -> bool:
        query = select(subscriptions.c.status).where(
            subscriptions.c.profile_id == survivor_of(profile_id),
            subscriptions.c.channel == channel,
        )
        async with self._engine.connect() as conn:
            status = (await conn.execute(query)).scalar_one_or_none()
        return status == "unsubscribed"
