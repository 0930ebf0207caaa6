"""A worker shutting down while runs wait: no noise, and the run goes on under another worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from engine.temporal import DATA_CONVERTER
from engine.worker import SANDBOX
from engine.workflow.journey import JourneyWorkflow
from tests.harness import person, running_worker, sqlite_store
from tests.workflow.record_histories import EVICTED, evict_mid_wait, unraisable_errors

pytestmark = pytest.mark.timeout(90)


async def test_a_run_evicted_mid_wait_prints_nothing_and_finishes_under_another_worker(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    store = await sqlite_store(tmp_path)
    try:
        result, history, printed = await evict_mid_wait(dev_env, store, tmp_path)
    finally:
        await store.aclose()

    # Before, each evicted run printed an "Exception ignored ... _NotInWorkflowEventLoopError"
    # traceback: the pause's `finally` asked for workflow time outside the workflow's loop.
    assert printed == []
    # The payment from before entry did not convert it; the one during the hold did.
    assert (result.status, result.exit_step, result.reason) == ("converted", "hold", "order_paid")
    assert result.path == ["pause", "morning", "hi", "hold"]
    replayer = Replayer(
        workflows=[JourneyWorkflow], data_converter=DATA_CONVERTER, workflow_runner=SANDBOX
    )
    await replayer.replay_workflow(history)


async def test_a_worker_shutting_down_with_runs_mid_wait_prints_no_traceback(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    env = time_skipping_env
    store = await sqlite_store(tmp_path)
    spec = {**EVICTED, "id": "shutdown"}
    try:
        with unraisable_errors() as printed:
            async with running_worker(env, store, tmp_path) as h:
                now = await env.get_current_time()
                version = await h.deploy(spec, {"hello": {"text": "hi"}}, now)
                await store.upsert_profiles([person("waits")])
                await h.enroller.enroll(version, ["waits"], now)
                await h.until_step("shutdown", "waits", "pause")
    finally:
        await store.aclose()

    assert printed == []
