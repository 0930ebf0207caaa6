"""Store fixtures: every test runs against SQLite (a temp file) and PostgreSQL (a fresh schema).

PostgreSQL runs only when ``JOURNEY_TEST_POSTGRES_URL`` is set, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``. Each session migrates one database per
backend (a ``jt_<random>`` schema on PostgreSQL, dropped at the end); ``store`` empties its tables
before each test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import delete, text

from engine.store import Store
from engine.store.tables import metadata

POSTGRES_URL = os.environ.get("JOURNEY_TEST_POSTGRES_URL")

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            not POSTGRES_URL, reason="set JOURNEY_TEST_POSTGRES_URL to run the PostgreSQL tests"
        ),
    ),
]


@dataclass(frozen=True)
class Target:
    """Where a test database lives; ``open()`` builds another Store on it, as a second process
    would."""

    backend: str
    url: str
    schema: str | None = None

    def open(self) -> Store:
        return Store.from_url(self.url, schema=self.schema)


class Targets:
    """Hands out new, empty databases and drops the PostgreSQL schemas at the end."""

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._schemas: list[str] = []

    def new(self, backend: str) -> Target:
        if backend == "sqlite":
            return Target("sqlite", f"sqlite+aiosqlite:///{self._tmp / uuid.uuid4().hex}.db")
        assert POSTGRES_URL is not None
        schema = f"jt_{uuid.uuid4().hex[:12]}"
        self._schemas.append(schema)
        return Target("postgresql", POSTGRES_URL, schema)

    async def drop_all(self) -> None:
        if not self._schemas:
            return
        assert POSTGRES_URL is not None
        async with Store.from_url(POSTGRES_URL) as admin, admin.engine.begin() as conn:
            for schema in self._schemas:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest_asyncio.fixture(scope="session")
async def targets(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Targets]:
    made = Targets(tmp_path_factory.mktemp("store"))
    yield made
    await made.drop_all()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def target(backend: str, targets: Targets) -> Target:
    """The session's database for ``backend`` (the one ``store`` uses)."""
    return targets.new(backend)


@pytest_asyncio.fixture(scope="session")
async def session_store(target: Target) -> AsyncIterator[Store]:
    store = target.open()
    await store.migrate()
    yield store
    await store.aclose()


@pytest_asyncio.fixture
async def store(session_store: Store) -> Store:
    """The migrated session store, emptied for this test."""
    async with session_store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(delete(table))
    return session_store


@pytest.fixture
def fresh(backend: str, targets: Targets) -> Target:
    """A new database of ``backend`` that nothing has migrated yet."""
    return targets.new(backend)
