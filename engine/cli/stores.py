"""The store as every CLI command opens it: from settings, migrated, closed on the way out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from engine.settings import Settings
from engine.store import Store


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    settings.home.mkdir(parents=True, exist_ok=True)
    store = Store.from_url(settings.resolved_database_url())
    try:
        await store.migrate()
        yield store
    finally:
        await store.aclose()
