"""The demo's worker runs as a process of its own (`journey worker`): it serves runs, and a
worker that cannot start is one clear error naming its log, not a demo that hangs."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from engine.demo.worker_process import worker_process
from engine.dsl.models import Journey
from engine.servers import free_port
from engine.services.deploy import deploy_journey
from engine.services.enroll import Enroller
from engine.stack import StackError
from engine.throwaway import RedisServer
from tests.harness import person, sqlite_store

pytestmark = pytest.mark.timeout(90)


async def test_the_worker_process_runs_the_journeys(
    dev_env: WorkflowEnvironment, redis_server: RedisServer, tmp_path: Path, repo_root: Path
) -> None:
    store = await sqlite_store(tmp_path)
    journey_id = f"solo-{uuid.uuid4().hex[:6]}"
    journey = {
        "id": journey_id,
        "name": "worker process",
        "entry": {"api": True},
        "steps": [{"id": "done", "exit": {"reason": "seen"}}],
    }
    now = await dev_env.get_current_time()
    version, _ = await deploy_journey(store, Journey.model_validate(journey), tmp_path, now)
    await store.upsert_profiles([person("w1")])
    queue = f"demo-{uuid.uuid4().hex[:6]}"
    settings = {
        "JOURNEY_HOME": str(tmp_path),
        "JOURNEY_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "JOURNEY_TASK_QUEUE": queue,
        "JOURNEY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}",
        "JOURNEY_REDIS_URL": redis_server.url,
        "JOURNEY_POLICY_PATH": str(repo_root / "journeys" / "policy.yaml"),
    }
    async with worker_process(settings, tmp_path / "demo.log"):
        await Enroller(store, dev_env.client, queue).enroll(version, ["w1"], now)
        for _ in range(200):
            [run] = await store.person_enrollments("w1", journey_id)
            if run.status != "active":
                break
            await asyncio.sleep(0.1)
    assert (run.status, run.exit_reason) == ("completed", "seen")
    assert "worker_started" in (tmp_path / "demo.log").read_text(encoding="utf-8")
    await store.aclose()


async def test_a_worker_that_cannot_start_is_an_error_naming_its_log(tmp_path: Path) -> None:
    settings = {
        "JOURNEY_HOME": str(tmp_path),
        "JOURNEY_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "JOURNEY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}",
    }
    log = tmp_path / "demo.log"
    with pytest.raises(StackError, match=f"the demo's worker did not start: see {log}"):
        async with worker_process(settings, log):
            pass
    assert "cannot reach Temporal" in log.read_text(encoding="utf-8")
