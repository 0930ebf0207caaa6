"""What an operator sees on the real dev server: the state query, search attributes, details."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.converter import decode_typed_search_attributes
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from engine.domain import Event
from engine.temporal import DATA_CONVERTER, JOURNEY_STEP
from engine.worker import SANDBOX
from engine.workflow.journey import JourneyWorkflow
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


async def test_a_run_shows_its_first_wait_from_its_start_and_upserts_only_changes(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    spec = {
        "id": "shown",
        "name": "shown from the start",
        "entry": {"api": True},
        "steps": [
            {"id": "pause", "wait": "1h"},
            {"id": "wait_pay", "wait_for": {"event": "order_paid", "timeout": "2d"}},
            {"id": "done", "exit": {}},
        ],
    }
    store = await sqlite_store(tmp_path)
    async with running_worker(time_skipping_env, store, tmp_path) as h:
        now = await time_skipping_env.get_current_time()
        version = await h.deploy(spec, {}, now)
        await h.store.upsert_profiles([person("p8")])
        await h.enroller.enroll(version, ["p8"], now)
        result = await h.result("shown", "p8")
        history = await h.handle("shown", "p8").fetch_history()
    await store.aclose()

    assert result.path == ["pause", "wait_pay", "done"]
    started = history.events[0].workflow_execution_started_event_attributes
    assert decode_typed_search_attributes(started.search_attributes).get(JOURNEY_STEP) == "pause"
    # The first rest is already shown: only the move to wait_pay costs an upsert event.
    upserted = [
        decode_typed_search_attributes(
            e.upsert_workflow_search_attributes_event_attributes.search_attributes
        ).get(JOURNEY_STEP)
        for e in history.events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
    ]
    assert upserted == ["wait_pay"]
    replayer = Replayer(
        workflows=[JourneyWorkflow], data_converter=DATA_CONVERTER, workflow_runner=SANDBOX
    )
    await replayer.replay_workflow(history)
