"""``journey dev``: the whole engine on one machine, with its workflow tasks and its activities in
two worker processes of their own, so the API's requests and the sends never hold up a workflow
task. A person entered through the API gets the journey's message; Ctrl-C stops every process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from engine.dsl.models import Journey
from engine.servers import free_port
from engine.services.deploy import deploy_journey
from engine.store import Store
from tests.harness import person, wait_until

pytestmark = pytest.mark.timeout(120)


async def _pollers(client: Client, queue: str, kind: TaskQueueType.ValueType) -> set[str]:
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace="default", task_queue=TaskQueue(name=queue), task_queue_type=kind
        )
    )
    return {poller.identity for poller in answer.pollers}


async def test_dev_runs_workflows_and_activities_in_two_processes_and_stops_them(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    (tmp_path / "hello.yaml").write_text("text: hi\n", encoding="utf-8")
    policy = tmp_path / "policy.yaml"  # no quiet hours: the send goes out now
    policy.write_text("caps: {global: [{max: 100, per: 1d}]}\n", encoding="utf-8")
    sent = tmp_path / "sent.jsonl"
    queue = f"dev-{uuid.uuid4().hex[:6]}"
    temporal, ui, redis, api = (free_port() for _ in range(4))
    environment = {
        **os.environ,
        "JOURNEY_HOME": str(home),
        "JOURNEY_TASK_QUEUE": queue,
        "JOURNEY_POLICY_PATH": str(policy),
        "JOURNEY_CONSOLE_PATH": str(sent),
        "JOURNEY_CHANNELS": '{"sms": "console"}',
    }
    environment.pop("JOURNEY_DATABASE_URL", None)
    dev = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "engine.cli.main", "dev"),
        *("--temporal-port", str(temporal), "--ui-port", str(ui)),
        *("--redis-port", str(redis), "--api-port", str(api)),
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert dev.stdout is not None
    output: list[str] = []
    store: Store | None = None
    try:
        while not any(line.startswith("ready.") for line in output):
            line = (await asyncio.wait_for(dev.stdout.readline(), 60)).decode()
            assert line, "journey dev exited:\n" + "".join(output)
            output.append(line)

        client = await Client.connect(f"127.0.0.1:{temporal}")
        workflow_pollers = await _pollers(client, queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
        activity_pollers = await _pollers(client, queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
        assert len(workflow_pollers) == 1 and len(activity_pollers) == 1
        assert workflow_pollers != activity_pollers
        worker_pids = {int(i.split("@")[0]) for i in workflow_pollers | activity_pollers}
        assert dev.pid not in worker_pids

        store = Store.from_url(f"sqlite+aiosqlite:///{home / 'journey.db'}")
        journey = Journey.model_validate(
            {
                "id": "dev-hello",
                "name": "dev",
                "entry": {"api": True},
                "steps": [{"id": "hi", "send": {"channel": "sms", "template": "hello"}}],
            }
        )
        await deploy_journey(store, journey, tmp_path, datetime.now(UTC))
        await store.upsert_profiles([person("d1", phone="+8613800138000")])
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api}") as http:
            answer = await http.post("/v1/journeys/dev-hello/trigger", json={"profile_ids": ["d1"]})
        assert answer.status_code == 200, answer.text

        async def delivered() -> bool:
            return sent.exists() and len(sent.read_text(encoding="utf-8").splitlines()) == 1

        await wait_until(delivered, within=60)
    finally:
        if store is not None:
            await store.aclose()
        dev.send_signal(signal.SIGINT)
        rest = (await asyncio.wait_for(dev.stdout.read(), 60)).decode()
        await asyncio.wait_for(dev.wait(), 60)
        output.append(rest)
    assert dev.returncode == 0, "".join(output)
    assert "stopped." in rest
    for pid in worker_pids:  # the worker processes went with it
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
