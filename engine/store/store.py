"""The journey store: profiles, events, journey versions, enrollments and the delivery log.

One ``Store`` per process, shared by the API, the worker's activities and the CLI. Every method
opens a short connection or transaction of its own; nothing is held between calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.schema import Table

from engine.domain import (
    Delivery,
    Enrollment,
    EnrollmentStatus,
    Event,
    JourneyVersion,
    Profile,
    Subscription,
    SubscriptionStatus,
)
from engine.identity import IdentifyResult, Identity
from engine.store import locks, oneid, records, sends
from engine.store.columns import require_aware
from engine.store.connect import create_engine
from engine.store.errors import EnrollmentNotFound, ProfileNotFound, VersionNotFound
from engine.store.filters import among
from engine.store.migrate import upgrade
from engine.store.sends import SendFacts, SendLookup
from engine.store.tables import (
    PROFILE_ID_MAX,
    deliveries,
    enrollments,
    events,
    identities,
    journey_versions,
    merges,
    profiles,
    segment_memberships,
    subscriptions,
)

# Keeps IN (...) lists and multi-row statements well under SQLite's and PostgreSQL's bind limits.
_CHUNK = 1000
_DEPLOY_ATTEMPTS = 5
_MIGRATE_ATTEMPTS = 6
# A transaction that lost a race (unique key, PostgreSQL deadlock) is run again this many times.
_ATTEMPTS = 5
# Namespace of the per-journey advisory locks taken by deploy_version on PostgreSQL.
_PG_DEPLOY_LOCK = 0x4A56  # "JV"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _resolved(profile_id: str) -> ColumnElement[str]:
    """SQL for "the survivor ``profile_id`` was merged into, or ``profile_id`` itself": one
    primary-key probe inside the statement that uses it, no extra round trip."""
    survivor = select(merges.c.survivor_id).where(merges.c.merged_id == profile_id)
    return func.coalesce(survivor.scalar_subquery(), profile_id)


class Store:
    """Async access to the journey database (SQLite or PostgreSQL).

    Build it with :meth:`from_url`, call :meth:`migrate` once at start-up, :meth:`aclose` at exit
    (or use ``async with``). Timestamps passed in must be timezone-aware (``ValueError``
    otherwise); all returned timestamps are aware UTC. ``clock`` only stamps bookkeeping columns
    (``updated_at``, ``received_at``).

    Profile ids merged into another profile (see :meth:`identify`) keep working everywhere a
    profile id is read or written: they resolve to the survivor, so a run started before a merge
    reads the merged profile and its consent.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        schema: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._engine = engine
        self._schema = schema
        self._clock = clock
        self._writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def from_url(cls, url: str | URL, *, schema: str | None = None, echo: bool = False) -> Store:
        """A store for ``sqlite+aiosqlite:///path.db`` or ``postgresql+psycopg://user@host/db``.

        ``schema`` (PostgreSQL only) puts every table in that schema; :meth:`migrate` creates it.
        No connection is opened until the first call.
        """
        return cls(create_engine(url, schema=schema, echo=echo), schema=schema)

    @property
    def engine(self) -> AsyncEngine:
        """The underlying engine, for read queries over ``engine.store.tables`` (segments)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that may write, committed when the block ends.

        On SQLite this process's writers take turns here, in asyncio, before asking SQLite for
        its write lock. Waiting for a turn costs nothing and has no deadline, so a busy event
        loop (a writer that holds the lock but waits to be scheduled) cannot push the others past
        SQLite's busy timeout; that timeout is left to writers in other processes.
        """
        if self.dialect != "sqlite":
            async with self._engine.begin() as conn:
                yield conn
            return
        loop = asyncio.get_running_loop()
        turn = self._writers.get(loop)
        if turn is None:
            turn = self._writers[loop] = asyncio.Lock()
        async with turn, self._engine.begin() as conn:
            yield conn

    # -- schema ------------------------------------------------------------------------------

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic ``upgrade head``); safe to repeat and
        safe for several processes to run at once."""
        if self.dialect == "sqlite":
            await _ensure_sqlite_dir(self._engine.url)
        for attempt in range(1, _MIGRATE_ATTEMPTS + 1):
            try:
                async with self._engine.begin() as conn:
                    await conn.run_sync(upgrade, schema=self._schema)
                return
            except OperationalError as exc:
                # Another process held SQLite's write lock past the busy timeout (it was
                # migrating); the upgrade is idempotent, so wait and run it again.
                if "database is locked" not in str(exc) or attempt == _MIGRATE_ATTEMPTS:
                    raise
                await asyncio.sleep(0.5 * attempt)

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
            for start in range(0, len(rows), _CHUNK):
                await conn.execute(stmt, rows[start : start + _CHUNK])
        return len(rows)

    async def get_profile(self, profile_id: str) -> Profile | None:
        """The profile, or None; a merged id gives the survivor's profile (its ``id`` differs)."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(profiles).where(profiles.c.id == _resolved(profile_id)))
            ).one_or_none()
        return None if row is None else records.profile(row)

    async def get_profiles(self, profile_ids: Iterable[str]) -> dict[str, Profile]:
        """The profiles that exist among ``profile_ids``, keyed by the id asked for (missing
        ids are absent; a merged id maps to the survivor's profile)."""
        ids = list(dict.fromkeys(profile_ids))
        found: dict[str, Profile] = {}
        async with self._engine.connect() as conn:
            for chunk in _chunks(ids):
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
                .where(profiles.c.id == _resolved(profile_id))
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
    ) -> IdentifyResult:
        """Find or create the person known by ``identities_`` (normalised: build them with
        ``engine.identity.identity``) and, optionally, by ``profile_id``; merge every profile
        they belong to into one; attach the identities; apply ``attributes`` (``None`` deletes a
        key), ``add_tags``, ``timezone`` and ``locale``.

        One transaction: a failure half-way writes nothing. The merge rule is in
        ``engine.store.oneid``. ``profile_id`` may name a profile that does not exist yet (it is
        created with that id, or merged as an empty profile). ``at`` stamps the profile and the
        merge records (default: the store's clock). Raises ``ValueError`` when there is neither
        an identity nor a profile id, or a profile id is too long.
        """
        wanted = sorted(set(identities_))
        if not wanted and profile_id is None:
            raise ValueError("identify needs at least one identity or a profile id")
        if profile_id is not None and len(profile_id) > PROFILE_ID_MAX:
            raise ValueError(f"profile id longer than {PROFILE_ID_MAX}: {profile_id[:40]!r}...")
        when = self._clock() if at is None else require_aware(at)
        for attempt in range(1, _ATTEMPTS + 1):
            try:
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
                    )
            except DBAPIError as exc:
                if attempt == _ATTEMPTS or not locks.retryable(exc):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def identities_of(self, profile_id: str) -> list[Identity]:
        """The person's identities (a merged id gives the survivor's), sorted."""
        query = (
            select(identities.c.type, identities.c.value)
            .where(identities.c.profile_id == _resolved(profile_id))
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
            for chunk in _chunks(ids):
                rows = await conn.execute(
                    select(merges.c.survivor_id, merges.c.merged_id)
                    .where(among(merges.c.survivor_id, chunk, self.dialect))
                    .order_by(merges.c.merged_id)
                )
                for survivor, merged in rows:
                    found.setdefault(survivor, []).append(merged)
        return found

    # -- events ------------------------------------------------------------------------------

    async def record_event(self, event: Event) -> bool:
        """Store ``event`` (its profile id resolved through merges), as delivered; ``False``
        (and nothing written) when its ``event_id`` is already stored, so a client may resend
        events freely. Callers that deliver events to journeys use :meth:`record_events`."""
        [recorded] = await self.record_events([event])
        return recorded.fresh

    async def record_events(
        self, events_: Sequence[Event], *, pending_names: Collection[str] = frozenset()
    ) -> list[records.RecordedEvent]:
        """Store a batch of events in one transaction; one result per item, in order.

        Profile ids are resolved through merges first (an event for a merged id is stored for
        the survivor). An event id already stored, or repeated within the batch, is not written
        again (``fresh=False``). Fresh events named in ``pending_names`` (those some journey
        listens for) are stored as not yet delivered; every other event counts as delivered.
        A stored duplicate whose delivery is still outstanding comes back ``pending`` (with the
        stored copy), so resending an event after a failed delivery delivers it.
        """
        if not events_:
            return []
        for event in events_:
            require_aware(event.occurred_at)
        received = self._clock()
        people = {event.profile_id for event in events_}
        event_ids = list(dict.fromkeys(event.event_id for event in events_))
        stmt = self._insert(events).on_conflict_do_nothing(index_elements=[events.c.event_id])
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._transaction() as conn:
                    await locks.writing(conn, "events")
                    survivors = await oneid.resolve(conn, people)
                    stored = await _stored_events(conn, event_ids)
                    rows: dict[str, dict[str, Any]] = {}
                    for event in events_:
                        if event.event_id in rows or event.event_id in stored:
                            continue
                        rows[event.event_id] = {
                            "event_id": event.event_id,
                            "profile_id": survivors.get(event.profile_id, event.profile_id),
                            "name": event.name,
                            "properties": dict(event.properties),
                            "occurred_at": event.occurred_at,
                            "received_at": received,
                            "delivered_at": None if event.name in pending_names else received,
                        }
                    values = list(rows.values())
                    for start in range(0, len(values), _CHUNK):
                        await conn.execute(stmt, values[start : start + _CHUNK])
                    inserted = set(rows)
                    if conn.dialect.name == "postgresql" and rows:
                        # A concurrent transaction may have stored some of these ids since we
                        # looked (SQLite's write lock rules that out): ours are the rows this
                        # transaction wrote. Cheaper than INSERT ... RETURNING for a batch.
                        inserted = await _written_here(conn, list(rows))
                        if len(inserted) != len(rows):
                            late = [i for i in rows if i not in inserted]
                            stored |= await _stored_events(conn, late)
                break
            except DBAPIError as exc:
                if attempt == _ATTEMPTS or not locks.retryable(exc):
                    raise
        results: list[records.RecordedEvent] = []
        first: dict[str, Event] = {}
        for event in events_:
            event_id = event.event_id
            if event_id in first:
                # Repeated within the batch: the first copy is the one stored and delivered.
                results.append(records.RecordedEvent(first[event_id], False, False))
                continue
            if event_id in inserted:
                row = rows[event_id]
                copy = Event(
                    event_id=event_id,
                    profile_id=row["profile_id"],
                    name=event.name,
                    occurred_at=event.occurred_at,
                    properties=row["properties"],
                )
                results.append(records.RecordedEvent(copy, True, row["delivered_at"] is None))
            else:
                copy, undelivered = stored[event_id]
                results.append(records.RecordedEvent(copy, False, undelivered))
            first[event_id] = copy
        return results

    async def mark_delivered(self, event_ids: Iterable[str], at: datetime) -> None:
        """Record that every listening journey got these events (no more redelivery)."""
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return
        async with self._transaction() as conn:
            for chunk in _chunks(ids):
                await conn.execute(
                    update(events)
                    .where(
                        among(events.c.event_id, chunk, self.dialect),
                        events.c.delivered_at.is_(None),
                    )
                    .values(delivered_at=require_aware(at))
                )

    async def undelivered_events(self, received_before: datetime, limit: int = 1000) -> list[Event]:
        """Events whose delivery is outstanding, received before ``received_before``, oldest
        first (for a sweep that delivers what a crash or an outage left behind)."""
        query = (
            select(events)
            .where(
                events.c.delivered_at.is_(None),
                events.c.received_at < require_aware(received_before),
            )
            .order_by(events.c.received_at, events.c.pk)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [records.event(row) for row in await conn.execute(query)]

    async def events_for(
        self, profile_id: str, name: str | None = None, since: datetime | None = None
    ) -> list[Event]:
        """A profile's events, oldest first; only those called ``name`` and those at or after
        ``since`` when given."""
        query = select(events).where(events.c.profile_id == profile_id)
        if name is not None:
            query = query.where(events.c.name == name)
        if since is not None:
            query = query.where(events.c.occurred_at >= require_aware(since))
        query = query.order_by(events.c.occurred_at, events.c.pk)
        async with self._engine.connect() as conn:
            return [records.event(row) for row in await conn.execute(query)]

    async def goal_events(self, name: str, profile_ids: Sequence[str]) -> dict[str, list[datetime]]:
        """When each of ``profile_ids`` did event ``name``, oldest first; every requested id is a
        key (with an empty list when the person never did it)."""
        times: dict[str, list[datetime]] = {pid: [] for pid in profile_ids}
        async with self._engine.connect() as conn:
            for chunk in _chunks(list(times)):
                result = await conn.execute(
                    select(events.c.profile_id, events.c.occurred_at)
                    .where(events.c.name == name, events.c.profile_id.in_(chunk))
                    .order_by(events.c.occurred_at, events.c.pk)
                )
                for profile_id, occurred_at in result:
                    times[profile_id].append(occurred_at)
        return times

    # -- journey versions --------------------------------------------------------------------

    async def deploy_version(
        self,
        journey_id: str,
        content_hash: str,
        definition: dict[str, Any],
        templates: dict[str, dict[str, str]],
        source: str,
        now: datetime,
    ) -> tuple[JourneyVersion, bool]:
        """Deploy a journey's content: ``(version, True)`` with the next version number (from 1)
        when the content is new, ``(existing version, False)`` when this exact content was
        deployed before. Concurrent deploys never share a number (the primary key refuses the
        loser, which retries)."""
        for attempt in range(1, _DEPLOY_ATTEMPTS + 1):
            try:
                async with self._transaction() as conn:
                    await _lock_journey(conn, journey_id)
                    existing = (
                        await conn.execute(
                            select(journey_versions).where(
                                journey_versions.c.journey_id == journey_id,
                                journey_versions.c.content_hash == content_hash,
                            )
                        )
                    ).one_or_none()
                    if existing is not None:
                        return records.journey_version(existing), False
                    latest = (
                        await conn.execute(
                            select(func.max(journey_versions.c.version)).where(
                                journey_versions.c.journey_id == journey_id
                            )
                        )
                    ).scalar_one()
                    version = (latest or 0) + 1
                    await conn.execute(
                        journey_versions.insert().values(
                            journey_id=journey_id,
                            version=version,
                            content_hash=content_hash,
                            definition=definition,
                            templates=templates,
                            source=source,
                            deployed_at=require_aware(now),
                        )
                    )
                    row = (await conn.execute(_version_query(journey_id, version))).one()
                    return records.journey_version(row), True
            except IntegrityError:
                if attempt == _DEPLOY_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_version(self, journey_id: str, version: int) -> JourneyVersion:
        """Raises ``VersionNotFound`` when that version was never deployed."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(_version_query(journey_id, version))).one_or_none()
        if row is None:
            raise VersionNotFound(journey_id, version)
        return records.journey_version(row)

    async def latest_version(self, journey_id: str) -> JourneyVersion | None:
        query = (
            select(journey_versions)
            .where(journey_versions.c.journey_id == journey_id)
            .order_by(journey_versions.c.version.desc())
            .limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else records.journey_version(row)

    async def latest_versions(self) -> list[JourneyVersion]:
        """The newest version of every deployed journey, ordered by journey id."""
        newest = (
            select(
                journey_versions.c.journey_id,
                func.max(journey_versions.c.version).label("version"),
            )
            .group_by(journey_versions.c.journey_id)
            .subquery()
        )
        query = (
            select(journey_versions)
            .join(
                newest,
                and_(
                    journey_versions.c.journey_id == newest.c.journey_id,
                    journey_versions.c.version == newest.c.version,
                ),
            )
            .order_by(journey_versions.c.journey_id)
        )
        async with self._engine.connect() as conn:
            return [records.journey_version(row) for row in await conn.execute(query)]

    # -- enrollments -------------------------------------------------------------------------

    async def create_enrollment(self, enrollment: Enrollment) -> None:
        """Insert a ledger row as given, with no re-entry check (imports, tests); entering
        people goes through :meth:`claim_enrollments`."""
        async with self._transaction() as conn:
            await conn.execute(enrollments.insert().values(**_enrollment_row(enrollment)))

    async def claim_enrollments(
        self,
        journey_id: str,
        version: int,
        profile_ids: Sequence[str],
        entered_at: datetime,
        allows: Callable[[Enrollment | None], bool],
    ) -> dict[str, records.EnrollmentClaim]:
        """Enter people into a journey's ledger, atomically with the re-entry decision.

        For each person, in one transaction that holds a lock on every (journey, person) pair:
        read their latest enrollment in the journey, and insert a new active one when
        ``allows(latest)`` says so. Concurrent claims for the same person are serialised, so
        ``allows`` always sees the other's row: under "once", ten simultaneous entries make one
        enrollment. Returns a claim per distinct id. Ids are used as given (resolve merged ids
        first). The caller starts the runs, and deletes the rows of runs that did not start.
        """
        ids = list(dict.fromkeys(profile_ids))
        if not ids:
            return {}
        require_aware(entered_at)
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._transaction() as conn:
                    await locks.lock_keys(
                        conn, locks.ENROLLMENT, [f"{journey_id}\x1f{pid}" for pid in ids]
                    )
                    latest = await _latest_enrollments(conn, journey_id, ids)
                    claims: dict[str, records.EnrollmentClaim] = {}
                    for pid in ids:
                        last = latest.get(pid)
                        created = None
                        if allows(last):
                            created = Enrollment(
                                id=uuid.uuid4().hex,
                                journey_id=journey_id,
                                journey_version=version,
                                profile_id=pid,
                                entered_at=entered_at,
                            )
                        claims[pid] = records.EnrollmentClaim(created, last)
                    rows = [_enrollment_row(c.created) for c in claims.values() if c.created]
                    for start in range(0, len(rows), _CHUNK):
                        await conn.execute(enrollments.insert(), rows[start : start + _CHUNK])
                return claims
            except DBAPIError as exc:
                if attempt == _ATTEMPTS or not locks.retryable(exc):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def delete_enrollments(self, enrollment_ids: Iterable[str]) -> None:
        """Remove enrollments whose runs could not be started; unknown ids are ignored."""
        ids = list(dict.fromkeys(enrollment_ids))
        if not ids:
            return
        async with self._transaction() as conn:
            for chunk in _chunks(ids):
                await conn.execute(delete(enrollments).where(enrollments.c.id.in_(chunk)))

    async def delete_enrollment(self, enrollment_id: str) -> None:
        """Remove an enrollment (its run could not be started); no error if it is not there."""
        async with self._transaction() as conn:
            await conn.execute(delete(enrollments).where(enrollments.c.id == enrollment_id))

    async def get_enrollment(self, enrollment_id: str) -> Enrollment | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(enrollments).where(enrollments.c.id == enrollment_id))
            ).one_or_none()
        return None if row is None else records.enrollment(row)

    async def last_enrollment(self, journey_id: str, profile_id: str) -> Enrollment | None:
        """The person's most recent enrollment in the journey (by ``entered_at``), for re-entry."""
        query = (
            select(enrollments)
            .where(enrollments.c.journey_id == journey_id, enrollments.c.profile_id == profile_id)
            .order_by(enrollments.c.entered_at.desc(), enrollments.c.id.desc())
            .limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else records.enrollment(row)

    async def enrollments(self, journey_id: str) -> list[Enrollment]:
        """Every enrollment in the journey, oldest first."""
        query = (
            select(enrollments)
            .where(enrollments.c.journey_id == journey_id)
            .order_by(enrollments.c.entered_at, enrollments.c.id)
        )
        async with self._engine.connect() as conn:
            return [records.enrollment(row) for row in await conn.execute(query)]

    async def finish_enrollment(
        self,
        enrollment_id: str,
        *,
        status: EnrollmentStatus,
        ended_at: datetime,
        exit_step: str | None,
        path: Sequence[str],
        variants: Mapping[str, str],
    ) -> None:
        """Record how a run ended. The first finish wins: finishing again (a retried activity) is
        a no-op. Raises ``EnrollmentNotFound`` for an unknown id."""
        if status == "active":
            raise ValueError("a finished enrollment cannot have status 'active'")
        async with self._transaction() as conn:
            result = await conn.execute(
                update(enrollments)
                .where(enrollments.c.id == enrollment_id, enrollments.c.status == "active")
                .values(
                    status=status,
                    ended_at=require_aware(ended_at),
                    exit_step=exit_step,
                    path=list(path),
                    variants=dict(variants),
                )
            )
            if result.rowcount == 0:
                exists = (
                    await conn.execute(
                        select(enrollments.c.id).where(enrollments.c.id == enrollment_id)
                    )
                ).one_or_none()
                if exists is None:
                    raise EnrollmentNotFound(enrollment_id)

    # -- subscriptions -----------------------------------------------------------------------

    async def set_subscription(
        self, profile_id: str, channel: str, status: SubscriptionStatus, source: str, at: datetime
    ) -> None:
        """Record consent for one channel (insert or replace); a merged id records it for the
        survivor."""
        values: dict[str, Any] = {
            "profile_id": _resolved(profile_id),
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
        query = select(subscriptions).where(subscriptions.c.profile_id == _resolved(profile_id))
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
            subscriptions.c.profile_id == _resolved(profile_id), subscriptions.c.channel == channel
        )
        async with self._engine.connect() as conn:
            status = (await conn.execute(query)).scalar_one_or_none()
        return status == "unsubscribed"

    # -- segment memberships -----------------------------------------------------------------

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
            for chunk in _chunks(left):
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
            for start in range(0, len(rows), _CHUNK):
                await conn.execute(insert(segment_memberships), rows[start : start + _CHUNK])
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

    # -- deliveries --------------------------------------------------------------------------

    async def get_delivery(self, send_key: str) -> Delivery | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(deliveries).where(deliveries.c.send_key == send_key))
            ).one_or_none()
        return None if row is None else records.delivery(row)

    async def send_facts(self, lookups: Sequence[SendLookup]) -> dict[SendLookup, SendFacts]:
        """What each send needs to know before it goes out (its earlier outcome, the person,
        their consent to the channel), for a whole batch of sends in one read."""
        async with self._engine.connect() as conn:
            return await sends.read_facts(conn, lookups)

    async def record_delivery(self, delivery: Delivery) -> Delivery:
        """Log the outcome of a send and return the row as stored (see
        :meth:`record_deliveries`)."""
        return (await self.record_deliveries([delivery]))[0]

    async def record_deliveries(self, batch: Sequence[Delivery]) -> list[Delivery]:
        """Log the outcomes of several sends in one transaction, in order; the rows as stored.

        A new send key is inserted. An existing one gets the new status, reason, provider message
        id and detail, except that a row already ``sent`` is never changed: a retried send
        activity cannot turn a sent message into anything else.
        """
        now = self._clock()
        async with self._transaction() as conn:
            return await sends.write_deliveries(conn, batch, now)

    async def deliveries(
        self, *, journey_id: str | None = None, profile_id: str | None = None
    ) -> list[Delivery]:
        """Deliveries, oldest first, optionally only one journey's and/or one person's."""
        query = select(deliveries)
        if journey_id is not None:
            query = query.where(deliveries.c.journey_id == journey_id)
        if profile_id is not None:
            query = query.where(deliveries.c.profile_id == profile_id)
        query = query.order_by(deliveries.c.created_at, deliveries.c.send_key)
        async with self._engine.connect() as conn:
            return [records.delivery(row) for row in await conn.execute(query)]

    # -- helpers -----------------------------------------------------------------------------

    def _insert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """A dialect INSERT, for ``ON CONFLICT`` (both dialects spell it the same way)."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)


async def _lock_journey(conn: AsyncConnection, journey_id: str) -> None:
    """Serialise deploys of one journey until the transaction ends, so concurrent deploys queue
    instead of colliding; the unique constraints stay the guarantee, this only spares retries."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            select(func.pg_advisory_xact_lock(_PG_DEPLOY_LOCK, func.hashtext(journey_id)))
        )
    else:
        # SQLite: take the database write lock now rather than at the INSERT.
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


def _version_query(journey_id: str, version: int) -> Select[Any]:
    return select(journey_versions).where(
        journey_versions.c.journey_id == journey_id, journey_versions.c.version == version
    )


def _enrollment_row(enrollment: Enrollment) -> dict[str, Any]:
    return {
        "id": enrollment.id,
        "journey_id": enrollment.journey_id,
        "journey_version": enrollment.journey_version,
        "profile_id": enrollment.profile_id,
        "entered_at": require_aware(enrollment.entered_at),
        "status": enrollment.status,
        "ended_at": None if enrollment.ended_at is None else require_aware(enrollment.ended_at),
        "exit_step": enrollment.exit_step,
        "path": list(enrollment.path),
        "variants": dict(enrollment.variants),
    }


async def _latest_enrollments(
    conn: AsyncConnection, journey_id: str, profile_ids: Sequence[str]
) -> dict[str, Enrollment]:
    """Each person's latest enrollment in the journey (by entered_at, then id)."""
    latest: dict[str, Enrollment] = {}
    other = enrollments.alias("other")
    newest = (
        select(func.max(other.c.entered_at))
        .where(
            other.c.journey_id == enrollments.c.journey_id,
            other.c.profile_id == enrollments.c.profile_id,
        )
        .scalar_subquery()
    )
    for chunk in _chunks(profile_ids):
        rows = await conn.execute(
            select(enrollments).where(
                enrollments.c.journey_id == journey_id,
                among(enrollments.c.profile_id, chunk, conn.dialect.name),
                enrollments.c.entered_at == newest,
            )
        )
        for row in rows:
            found = records.enrollment(row)
            current = latest.get(found.profile_id)
            if current is None or found.id > current.id:
                latest[found.profile_id] = found
    return latest


async def _written_here(conn: AsyncConnection, event_ids: Sequence[str]) -> set[str]:
    """Which of ``event_ids`` this PostgreSQL transaction inserted (their ``xmin`` is ours)."""
    query = select(events.c.event_id).where(
        among(events.c.event_id, event_ids, "postgresql"),
        text("events.xmin = pg_current_xact_id()::xid"),
    )
    return set((await conn.execute(query)).scalars())


async def _stored_events(
    conn: AsyncConnection, event_ids: Sequence[str]
) -> dict[str, tuple[Event, bool]]:
    """Stored events by id, each with whether its delivery is outstanding."""
    found: dict[str, tuple[Event, bool]] = {}
    for chunk in _chunks(event_ids):
        query = select(events).where(among(events.c.event_id, chunk, conn.dialect.name))
        for row in await conn.execute(query):
            found[row.event_id] = (records.event(row), row.delivered_at is None)
    return found


async def _ensure_sqlite_dir(url: URL) -> None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    await asyncio.to_thread(Path(database).parent.mkdir, parents=True, exist_ok=True)
