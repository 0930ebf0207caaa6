"""Journey versions (immutable, deployed once per content) and the enrollment ledger."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.domain import Enrollment, EnrollmentEnd, EnrollmentStatus, JourneyVersion
from engine.store import locks, records
from engine.store.columns import require_aware
from engine.store.core import CHUNK, StoreCore, chunks
from engine.store.errors import EnrollmentNotFound, VersionNotFound
from engine.store.filters import among
from engine.store.retry import retrying
from engine.store.tables import enrollments, journey_versions

# Namespace of the per-journey advisory locks taken by deploy_version on PostgreSQL.
_PG_DEPLOY_LOCK = 0x4A56  # "JV"


class JourneyStore(StoreCore):
    """Versions and enrollments (see :class:`engine.store.Store`)."""

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
        async for attempt in retrying():
            with attempt:
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
        async for attempt in retrying():
            with attempt:
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
                    for start in range(0, len(rows), CHUNK):
                        await conn.execute(enrollments.insert(), rows[start : start + CHUNK])
                return claims
        raise AssertionError("unreachable")  # pragma: no cover

    async def delete_enrollments(self, enrollment_ids: Iterable[str]) -> None:
        """Remove enrollments whose runs could not be started; unknown ids are ignored."""
        ids = list(dict.fromkeys(enrollment_ids))
        if not ids:
            return
        async with self._transaction() as conn:
            for chunk in chunks(ids):
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

    async def live_runs(self) -> dict[str, int]:
        """Active enrollments (runs in flight) of every deployed journey, 0 included."""
        deployed = select(journey_versions.c.journey_id).distinct()
        active = (
            select(enrollments.c.journey_id, func.count())
            .where(enrollments.c.status == "active")
            .group_by(enrollments.c.journey_id)
        )
        async with self._engine.connect() as conn:
            counts = {journey_id: 0 for journey_id in (await conn.scalars(deployed))}
            for journey_id, runs in await conn.execute(active):
                counts[journey_id] = runs
        return counts

    async def person_enrollments(
        self, profile_id: str, journey_id: str | None = None
    ) -> list[Enrollment]:
        """A person's enrollments (in one journey, or all), oldest first."""
        query = select(enrollments).where(enrollments.c.profile_id == profile_id)
        if journey_id is not None:
            query = query.where(enrollments.c.journey_id == journey_id)
        query = query.order_by(enrollments.c.entered_at, enrollments.c.id)
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
        exit_reason: str | None = None,
    ) -> None:
        """Record how a run ended (see :meth:`finish_enrollments`). Raises
        ``EnrollmentNotFound`` for an unknown id."""
        end = EnrollmentEnd(
            enrollment_id, status, ended_at, exit_step, tuple(path), dict(variants), exit_reason
        )
        if not (await self.finish_enrollments([end]))[0]:
            raise EnrollmentNotFound(enrollment_id)

    async def finish_enrollments(self, ends: Sequence[EnrollmentEnd]) -> list[bool]:
        """Record how several runs ended, in one transaction (one write lock and one commit for
        a whole wave's worth of runs ending at once); for each, in order, whether its enrollment
        exists (False: an unknown id, nothing written for it).

        The first finish wins: finishing again (a retried activity, or the same id twice in one
        batch) leaves the row as the first finish wrote it.
        """
        for end in ends:
            if end.status == "active":
                raise ValueError("a finished enrollment cannot have status 'active'")
            require_aware(end.ended_at)
        async with self._transaction() as conn:
            unchanged: set[str] = set()
            # In id order (stable: a repeated id keeps its first finish first), so two workers'
            # batches that share a row lock it in the same order rather than deadlock.
            for end in sorted(ends, key=lambda end: end.enrollment_id):
                result = await conn.execute(
                    update(enrollments)
                    .where(enrollments.c.id == end.enrollment_id, enrollments.c.status == "active")
                    .values(
                        status=end.status,
                        ended_at=end.ended_at,
                        exit_step=end.exit_step,
                        exit_reason=end.exit_reason,
                        path=list(end.path),
                        variants=dict(end.variants),
                    )
                )
                if result.rowcount == 0:
                    unchanged.add(end.enrollment_id)
            missing = unchanged - await _existing(conn, unchanged)
        return [end.enrollment_id not in missing for end in ends]


async def _existing(conn: AsyncConnection, ids: set[str]) -> set[str]:
    """Which of ``ids`` have an enrollment row."""
    if not ids:
        return set()
    rows = await conn.execute(
        select(enrollments.c.id).where(among(enrollments.c.id, ids, conn.dialect.name))
    )
    return {row.id for row in rows}


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
        "exit_reason": enrollment.exit_reason,
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
    for chunk in chunks(profile_ids):
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
