"""The demo's worker runs as a process of its own (`journey worker`): it serves runs, and a
worker that cannot start is one clear error naming its log, not a demo that hangs."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from engine.cli.main import app
from engine.dsl.models import Journey
from engine.servers import free_port
from engine.services.deploy import deploy_journey
from engine.services.enroll import Enroller
from engine.stack import StackError
from engine.throwaway import RedisServer
from engine.worker_process import worker_process
from tests.harness import person, sqlite_store

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("roles", [("all",), ("workflows", "activities")])
async def test_the_worker_processes_run_the_journeys(
    dev_env: WorkflowEnvironment,
    redis_server: RedisServer,
    tmp_path: Path,
    roles: tuple[str, ...],
) -> None:
    """One ``journey worker``, or one for workflows (with their local activities: the branch
    read, the ledger write) and one for activities (the send), as the demo runs them."""
    store = await sqlite_store(tmp_path)
    journey_id = f"solo-{uuid.uuid4().hex[:6]}"
    journey = {
        "id": journey_id,
        "name": "worker process",
        "entry": {"api": True},
        "steps": [
            {"id": "vip", "branch": [{"when": {"attribute": "vip", "eq": True}, "goto": "hi"}]},
            {"id": "hi", "send": {"channel": "sms", "template": "hello"}},
            {"id": "done", "exit": {"reason": "seen"}},
        ],
    }
    (tmp_path / "hello.yaml").write_text("text: hi\n", encoding="utf-8")
    policy = tmp_path / "policy.yaml"  # no quiet hours: the send goes out now
    policy.write_text("caps: {global: [{max: 100, per: 1d}]}\n", encoding="utf-8")
    now = await dev_env.get_current_time()
    version, _ = await deploy_journey(store, Journey.model_validate(journey), tmp_path, now)
    await store.upsert_profiles([person("w1", vip=True, phone="+8613800138000")])
    queue = f"demo-{uuid.uuid4().hex[:6]}"
    settings = {
        "JOURNEY_HOME": str(tmp_path),
        "JOURNEY_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "JOURNEY_TASK_QUEUE": queue,
        "JOURNEY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}",
        "JOURNEY_REDIS_URL": redis_server.url,
        "JOURNEY_POLICY_PATH": str(policy),
        "JOURNEY_CONSOLE_PATH": str(tmp_path / "sent.jsonl"),
        "JOURNEY_CHANNELS": '{"sms": "console"}',
    }
    async with contextlib.AsyncExitStack() as workers:
        for role in roles:
            await workers.enter_async_context(
                worker_process(settings, tmp_path / "demo.log", role=role)
            )
        await Enroller(store, dev_env.client, queue).enroll(version, ["w1"], now)
        for _ in range(200):
            [run] = await store.person_enrollments("w1", journey_id)
            if run.status != "active":
                break
            await asyncio.sleep(0.1)
    assert (run.status, run.exit_reason) == ("completed", "seen")
    assert run.path == ("vip", "hi", "done")
    # The send ran once: no attempt went to a worker that cannot run it.
    history = await dev_env.client.get_workflow_handle(f"journey:{journey_id}:w1").fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert attempts == [1]
    assert len((tmp_path / "sent.jsonl").read_text(encoding="utf-8").splitlines()) == 1
    assert "worker_started" in (tmp_path / "demo.log").read_text(encoding="utf-8")
    await store.aclose()


async def test_a_worker_that_cannot_start_is_an_error_naming_its_log(tmp_path: Path) -> None:
    settings = {
        "JOURNEY_HOME": str(tmp_path),
        "JOURNEY_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "JOURNEY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}",
    }
    log = tmp_path / "demo.log"
    with pytest.raises(StackError, match=f"the worker did not start: see {log}"):
        async with worker_process(settings, log):
            pass
    assert "cannot reach Temporal" in log.read_text(encoding="utf-8")


def test_an_unknown_worker_role_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["worker", "--only", "sends"], env={"JOURNEY_HOME": str(tmp_path)}
    )
    assert result.exit_code == 2
    assert "--only 'sends': use workflows or activities" in result.output
