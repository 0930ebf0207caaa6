"""`StoreCore`: the engine, transactions, migrations and the helpers every part of the store
shares.

SQLite writers of one process take turns here (see :meth:`StoreCore._transaction`).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.schema import Table

from engine.store.connect import create_engine
from engine.store.migrate import upgrade
from engine.store.retry import retrying, sqlite_locked
from engine.store.tables import merges

# Keeps IN (...) lists and multi-row statements well under SQLite's and PostgreSQL's bind limits.
CHUNK = 1000
_MIGRATE_ATTEMPTS = 6


def utcnow() -> datetime:
    return datetime.now(UTC)


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def survivor_of(profile_id: str) -> ColumnElement[str]:
    """SQL for "the survivor ``profile_id`` was merged into, or ``profile_id`` itself": one
    primary-key probe inside the statement that uses it, no extra round trip."""
    survivor = select(merges.c.survivor_id).where(merges.c.merged_id == profile_id)
    return func.coalesce(survivor.scalar_subquery(), profile_id)


def dialect_insert(table: Table, dialect: str) -> sqlite.Insert | postgresql.Insert:
    """A dialect INSERT, for ``ON CONFLICT`` (both dialects spell it the same way)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class StoreCore:
    """The engine and what every part of :class:`engine.store.Store` builds on."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        schema: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self._schema = schema
        self._clock = clock
        self._writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def from_url(cls, url: str | URL, *, schema: str | None = None, echo: bool = False) -> Self:
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

    async def __aenter__(self) -> Self:
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
        # Another process may hold SQLite's write lock past the busy timeout (it is migrating);
        # the upgrade is idempotent, so wait and run it again.
        async for attempt in retrying(
            _MIGRATE_ATTEMPTS, when=sqlite_locked, first_wait=0.25, max_wait=2.0
        ):
            with attempt:
                async with self._engine.begin() as conn:
                    await conn.run_sync(upgrade, schema=self._schema)

    # -- helpers -----------------------------------------------------------------------------

    def _insert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        return dialect_insert(table, self.dialect)


async def _ensure_sqlite_dir(url: URL) -> None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    await asyncio.to_thread(Path(database).parent.mkdir, parents=True, exist_ok=True)
