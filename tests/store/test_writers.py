"""SQLite writers of one process take turns before asking for SQLite's write lock, so a busy
process never runs its own writers into "database is locked"."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event

from engine.domain import Delivery, Event, Profile
from engine.store import Store

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


async def test_concurrent_writers_never_meet_a_locked_database(tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'j.db'}")
    await store.migrate()

    def no_patience(dbapi_connection: Any, _record: Any) -> None:
        # Without waiting in SQLite's busy handler, two writers at once fail at once.
        dbapi_connection.cursor().execute("PRAGMA busy_timeout = 0")

    await store.engine.dispose()
    event.listen(store.engine.sync_engine, "connect", no_patience)
    await store.upsert_profiles([Profile(f"p{i}", {"n": i}) for i in range(40)])

    async def write(i: int) -> None:
        pid = f"p{i}"
        await store.record_events([Event(f"e{i}", pid, "cart_added", T0, {"sku": i})])
        await store.set_subscription(pid, "sms", "unsubscribed", "test", T0)
        await store.record_delivery(
            Delivery(f"k{i}", "cart", 1, pid, "s", "sms", "t", "marketing", "sent", T0)
        )
        await store.update_profile(pid, add_tags=["seen"])

    await asyncio.gather(*(write(i) for i in range(40)))

    assert len(await store.deliveries()) == 40
    assert all(
        "seen" in p.tags for p in (await store.get_profiles(f"p{i}" for i in range(40))).values()
    )
    await store.aclose()
