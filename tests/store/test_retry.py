"""The store's retry policy: a transaction PostgreSQL picks as a deadlock victim runs again,
after a jittered pause, and the caller never sees the deadlock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from structlog.testing import capture_logs

from engine.domain import Event
from engine.store import Store
from engine.store.retry import lost_race, retrying, sqlite_locked
from tests.store.conftest import Target

pytestmark = pytest.mark.timeout(60)


async def test_a_deadlock_victim_is_retried_after_a_pause(
    backend: str, store: Store, target: Target
) -> None:
    if backend != "postgresql":
        pytest.skip("deadlocks are PostgreSQL's")
    other = target.open()
    try:
        async with other.engine.connect() as rival:
            await rival.begin()
            # The rival waits longer before checking for deadlocks, so the store's transaction
            # is the one PostgreSQL aborts.
            await rival.execute(text("SET LOCAL deadlock_timeout = '20s'"))
            await rival.execute(text("LOCK TABLE merges IN ACCESS EXCLUSIVE MODE"))
            event = Event("e-1", "p-1", "clicked", datetime.now(UTC), {})
            with capture_logs() as logs:
                recording = asyncio.create_task(store.record_events([event]))
                # record_events holds events (ROW EXCLUSIVE) and now waits for merges ...
                await _until_waiting(other)
                # ... while the rival waits for events: a deadlock.
                await rival.execute(text("LOCK TABLE events IN SHARE MODE"))
                await rival.commit()
                [recorded] = await asyncio.wait_for(recording, 30)
    finally:
        await other.aclose()

    assert recorded.fresh
    assert [e.event_id for e in await store.events_for("p-1")] == ["e-1"]
    [retried] = [entry for entry in logs if entry["event"] == "store_transaction_retried"]
    assert retried["sqlstate"] == "40P01" and retried["attempt"] == 1
    assert retried["wait"] >= 0  # a drawn pause (random, up to FIRST_WAIT), not a re-run at once


async def _until_waiting(other: Store) -> None:
    """Until some session of this database waits for a lock (the store's transaction)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    async with asyncio.timeout(20):
        while True:
            async with other.engine.connect() as conn:
                if (await conn.execute(query)).scalar_one():
                    return
            await asyncio.sleep(0.02)


def test_what_counts_as_a_lost_race() -> None:
    class Orig(Exception):
        def __init__(self, message: str, sqlstate: str | None = None) -> None:
            super().__init__(message)
            self.sqlstate = sqlstate

    deadlock = OperationalError("stmt", {}, Orig("deadlock detected", "40P01"))
    busy = OperationalError("stmt", {}, Orig("database is locked"))
    duplicate = IntegrityError("stmt", {}, Orig("UNIQUE constraint failed"))
    other = OperationalError("stmt", {}, Orig("no such table: x"))
    assert [lost_race(e) for e in (deadlock, busy, duplicate, other)] == [True, True, True, False]
    assert [sqlite_locked(e) for e in (deadlock, busy, duplicate)] == [False, True, False]


async def test_the_policy_gives_up_after_its_attempts_with_the_last_error() -> None:
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        async for attempt in retrying(3, first_wait=0.001):
            with attempt:
                runs += 1
                raise IntegrityError("stmt", {}, Exception(f"run {runs}"))

    with pytest.raises(IntegrityError, match="run 3"):
        await flaky()
    assert runs == 3
