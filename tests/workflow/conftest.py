"""A worker on the module's time-skipping server, over a fresh SQLite store, for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.harness import Harness, running_worker, sqlite_store


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Harness]:
    store = await sqlite_store(tmp_path)
    async with running_worker(time_skipping_env, store, tmp_path) as h:
        yield h
    await store.aclose()
