"""What an operator sees on the real dev server: the state query, search attributes, details."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment

from engine.domain import Event
from tests.harness import person, running_worker, sqlite_store

pytestmark = pytest.mark.timeout(60)


async def test_a_waiting_run_is_findable_and_explains_itself(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    journey_id = f"cart-{uuid.uuid4().hex[:6]}"
    spec = {
        "id": journey_id,
        "name": "cart recovery",
        "entry": {"api": True},
        "goal": {"event": "order_paid", "within": "7d"},
        "steps": [
            {
                "id": "wait_pay",
                "wait_for": {"event": "order_paid", "timeout": "2d", "on_event": "done"},
            },
            {"id": "done", "exit": {}},
        ],
    }
    store = await sqlite_store(tmp_path)
    async with running_worker(dev_env, store, tmp_path) as h:
        now = await dev_env.get_current_time()
        version = await h.deploy(spec, {}, now)
        await h.store.upsert_profiles([person("p7", timezone="America/New_York")])
        await h.enroller.enroll(version, ["p7"], now)
        handle = h.handle(journey_id, "p7")

        state = await h.until_step(journey_id, "p7", "wait_pay")
        assert state.waiting_for == "order_paid"
        assert state.until is not None
        assert abs(state.until - (now + timedelta(days=2))) < timedelta(minutes=1)

        query = f"JourneyId = '{journey_id}' AND JourneyStep = 'wait_pay' AND ProfileId = 'p7'"
        found = await _eventually(lambda: _ids(dev_env, query), until=lambda ids: len(ids) == 1)
        assert found == [handle.id]

        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        details = metadata.current_details
        assert details.startswith("waiting for order_paid until ")
        assert details.endswith("America/New_York")

        paid = await dev_env.get_current_time()
        await h.router.ingest(Event("o1", "p7", "order_paid", paid), paid)
        result = await asyncio.wait_for(h.result(journey_id, "p7"), timeout=10)
        assert result.status == "converted"
    await store.aclose()


async def _ids(env: WorkflowEnvironment, query: str) -> list[str]:
    return [w.id async for w in env.client.list_workflows(query)]


async def _eventually(fetch, until, within: float = 10.0):  # type: ignore[no-untyped-def]
    """Visibility is eventually consistent: poll briefly."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await fetch()
        if until(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)
