"""A worker killed with SIGKILL mid-journey: a new worker finishes every run, no send twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from temporalio.testing import WorkflowEnvironment

from engine.dsl.models import Journey
from engine.services.deploy import deploy_journey
from engine.services.enroll import Enroller
from engine.store import Store
from tests.harness import RedisServer, person, sqlite_store

pytestmark = pytest.mark.timeout(180)

PEOPLE = 40
SENDS = 3


def start_worker(
    env: WorkflowEnvironment,
    database: Path,
    outbox: Path,
    queue: str,
    log: Path,
    redis: RedisServer,
):
    policy = log.parent / "policy.yaml"
    policy.write_text("caps: {global: [{max: 100, per: 1d}]}\n", encoding="utf-8")
    environment = {
        **os.environ,
        "JOURNEY_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "JOURNEY_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "JOURNEY_TASK_QUEUE": queue,
        "JOURNEY_CONSOLE_PATH": str(outbox),
        "JOURNEY_CHANNELS": json.dumps({"sms": "console"}),
        "JOURNEY_REDIS_URL": redis.url,
        "JOURNEY_POLICY_PATH": str(policy),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", "worker"],
        env=environment,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def wait_until(check, within: float) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_killed_worker_restarts_and_every_send_happens_exactly_once(
    dev_env: WorkflowEnvironment, tmp_path: Path, redis_server: RedisServer
) -> None:
    store: Store = await sqlite_store(tmp_path)
    templates = tmp_path / "templates"
    templates.mkdir()
    YAML().dump({"text": "{{ profile.first_name }}"}, templates / "t.yaml")
    steps: list[dict[str, object]] = []
    for n in range(SENDS):
        steps.append({"id": f"send{n}", "send": {"channel": "sms", "template": "t"}})
        steps.append({"id": f"pause{n}", "wait": "1s"})
    journey = Journey.model_validate(
        {"id": f"crash-{uuid.uuid4().hex[:6]}", "name": "n", "entry": {"api": True}, "steps": steps}
    )
    now = await dev_env.get_current_time()
    version, _ = await deploy_journey(store, journey, templates, now)
    people = [person(f"p{i}", phone=f"+86{i}") for i in range(PEOPLE)]
    await store.upsert_profiles(people)

    queue = f"crash-{uuid.uuid4().hex[:6]}"
    outbox = tmp_path / "outbox.jsonl"
    database = tmp_path / "journey.db"
    first = start_worker(dev_env, database, outbox, queue, tmp_path / "worker1.log", redis_server)
    second = None
    try:
        enroller = Enroller(store, dev_env.client, queue)
        assert (await enroller.enroll(version, [p.id for p in people], now))["started"] == PEOPLE

        async def some_sent() -> bool:
            return len(await store.deliveries(journey_id=journey.id)) >= PEOPLE

        await wait_until(some_sent, within=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        before = len(await store.deliveries(journey_id=journey.id))
        assert before < PEOPLE * SENDS, "the worker finished before it could be killed"

        second = start_worker(
            dev_env, database, outbox, queue, tmp_path / "worker2.log", redis_server
        )

        async def all_done() -> bool:
            return all(e.status == "completed" for e in await store.enrollments(journey.id))

        await wait_until(all_done, within=120)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=20)

    deliveries = await store.deliveries(journey_id=journey.id)
    assert len(deliveries) == PEOPLE * SENDS
    assert {d.status for d in deliveries} == {"sent"}
    per_person = {(d.profile_id, d.step_id) for d in deliveries}
    assert len(per_person) == PEOPLE * SENDS
    written = [json.loads(line)["send_key"] for line in outbox.read_text().splitlines()]
    assert set(written) == {d.send_key for d in deliveries}
    await store.aclose()
