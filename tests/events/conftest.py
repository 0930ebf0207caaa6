"""Events end to end on the Temporal dev server (the embedded stack's server): the API over a
real uvicorn server, a real SQLite store, and a worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.api.conftest import Api, api_over


@pytest.fixture
async def live_api(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_over(dev_env, tmp_path) as running:
        yield running
