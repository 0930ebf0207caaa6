from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from engine.domain import Profile
from engine.store import Store
from engine.store.migrate import alembic_config, upgrade
from engine.store.tables import metadata

from .conftest import Target


def _current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def test_migrating_again_keeps_schema_and_data(store: Store) -> None:
    await store.upsert_profiles([Profile("p1", {"a": 1})])

    await store.migrate()
    await store.migrate()

    assert await store.get_profile("p1") == Profile("p1", {"a": 1})
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_current_revision) == _head_revision()


async def test_processes_migrating_a_new_database_at_once_all_succeed(fresh: Target) -> None:
    stores = [fresh.open() for _ in range(3)]
    try:
        await asyncio.gather(*(s.migrate() for s in stores))
        assert await stores[0].count_profiles() == 0
    finally:
        for s in stores:
            await s.aclose()


async def test_migrations_create_exactly_the_declared_tables(fresh: Target) -> None:
    async with fresh.open() as store:
        await store.migrate()
        async with store.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    assert diff == []


async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(
    store: Store, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite pragmas")
    async with store.engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 10_000
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1


async def test_postgres_tables_live_in_the_given_schema(store: Store, target: Target) -> None:
    if target.backend != "postgresql":
        pytest.skip("PostgreSQL schemas")
    async with store.engine.connect() as conn:
        result = await conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": target.schema},
        )
        names = {row[0] for row in result}
    assert names == {t.name for t in metadata.sorted_tables} | {"alembic_version"}


def test_schema_is_refused_for_sqlite_and_for_odd_names() -> None:
    with pytest.raises(ValueError, match="only supported on PostgreSQL"):
        Store.from_url("sqlite+aiosqlite:///x.db", schema="jt_x")
    with pytest.raises(ValueError, match="schema must match"):
        Store.from_url("postgresql+psycopg://u@h/db", schema='x"; drop')


async def test_building_a_store_opens_no_connection() -> None:
    store = Store.from_url("postgresql+psycopg://nobody@127.0.0.1:1/nowhere", schema="jt_none")
    await store.aclose()


async def test_migrate_creates_the_sqlite_directory(tmp_path: Path) -> None:
    async with Store.from_url(f"sqlite+aiosqlite:///{tmp_path}/a/b/journey.db") as store:
        await store.migrate()
        assert await store.count_profiles() == 0
    assert (tmp_path / "a" / "b" / "journey.db").is_file()


async def test_events_stored_before_0003_count_as_delivered(fresh: Target) -> None:
    async with fresh.open() as store:
        async with store.engine.begin() as conn:
            await conn.run_sync(upgrade, "0002", schema=fresh.schema)
            await conn.execute(
                text(
                    "INSERT INTO events (event_id, profile_id, name, properties, occurred_at,"
                    " received_at) VALUES ('old', 'p1', 'x', '{}', :t, :t)"
                ),
                {"t": datetime(2026, 1, 1, tzinfo=UTC)},
            )
        await store.migrate()
        assert await store.undelivered_events(datetime.now(UTC) + timedelta(days=1)) == []
        assert [e.event_id for e in await store.events_for("p1")] == ["old"]
