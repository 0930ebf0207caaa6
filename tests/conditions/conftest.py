"""Condition fixtures: a migrated store per backend for the session (SQLite file, and a fresh
PostgreSQL schema when ``JOURNEY_TEST_POSTGRES_URL`` is set), emptied by `clean`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import delete

from engine.store import Store
from engine.store.tables import metadata
from tests.store.conftest import BACKENDS, Targets


@pytest_asyncio.fixture(scope="session")
async def condition_targets(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Targets]:
    made = Targets(tmp_path_factory.mktemp("conditions"))
    yield made
    await made.drop_all()


@pytest.fixture(scope="session", params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture(scope="session")
async def db(db_backend: str, condition_targets: Targets) -> AsyncIterator[Store]:
    """The session's migrated store on ``db_backend``; tests empty it with `clean`."""
    store = condition_targets.new(db_backend).open()
    await store.migrate()
    yield store
    await store.aclose()


async def clean(store: Store) -> None:
    async with store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(delete(table))
