"""Building the AsyncEngine: per-connection settings for SQLite and PostgreSQL.

Creating an engine does no I/O; the listeners below run when the pool opens each connection.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_BUSY_TIMEOUT_MS = 10_000

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def create_engine(url: str | URL, *, schema: str | None = None, echo: bool = False) -> AsyncEngine:
    """An AsyncEngine for ``sqlite+aiosqlite://...`` or ``postgresql+psycopg://...``.

    ``schema`` (PostgreSQL only) becomes the connection's ``search_path``, so tables and Alembic's
    version table live in that schema. It must be a plain lower-case identifier.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if schema is not None:
        if backend != "postgresql":
            raise ValueError(f"schema is only supported on PostgreSQL, not {backend}")
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema must match {_SCHEMA_NAME.pattern}, got {schema!r}")
    engine = create_async_engine(parsed, echo=echo, pool_pre_ping=backend == "postgresql")
    if backend == "sqlite":
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
    elif schema is not None:
        event.listen(engine.sync_engine, "connect", _search_path(schema), insert=True)
    return engine


def _configure_sqlite(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # WAL lets readers run while one writer writes; busy_timeout makes a second writer wait for
    # the lock instead of failing at once with "database is locked". In WAL, synchronous=NORMAL
    # syncs at checkpoints instead of at every commit: a crashed process loses nothing, a power
    # cut may lose the last commits (SQLite's recommended setting for WAL; production data
    # belongs in PostgreSQL).
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _search_path(schema: str) -> Any:
    def set_search_path(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # In autocommit so the SET is not rolled back with the pool's reset-on-return.
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f'SET SESSION search_path TO "{schema}"')
        finally:
            cursor.close()
            dbapi_connection.autocommit = autocommit

    return set_search_path
