"""Importer fixtures: a migrated, empty store per backend for each test (SQLite file; a fresh
PostgreSQL schema when ``JOURNEY_TEST_POSTGRES_URL`` is set), and the CDNOW data set, which lives
outside the repository: ``JOURNEY_CDNOW_PATH``, else the team's ``../shared`` folder."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from engine.store import Store
from tests.store.conftest import BACKENDS, Targets

CDNOW = Path(
    os.environ.get("JOURNEY_CDNOW_PATH")
    or Path(__file__).resolve().parents[3] / "shared" / "data" / "cdnow" / "CDNOW_master.txt"
)


@pytest_asyncio.fixture(scope="session")
async def import_targets(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Targets]:
    made = Targets(tmp_path_factory.mktemp("imports"))
    yield made
    await made.drop_all()


@pytest.fixture(scope="session", params=BACKENDS)
def import_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def empty_store(import_backend: str, import_targets: Targets) -> AsyncIterator[Store]:
    store = import_targets.new(import_backend).open()
    await store.migrate()
    yield store
    await store.aclose()


@pytest.fixture(scope="session")
def cdnow_path() -> Path:
    if not CDNOW.exists():
        pytest.skip(
            f"the CDNOW data set is absent: no file at {CDNOW} (the shared folder beside the "
            "checkout, ../shared/data/cdnow/CDNOW_master.txt, or JOURNEY_CDNOW_PATH)"
        )
    return CDNOW
