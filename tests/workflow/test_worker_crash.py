"""A worker killed with SIGKILL mid-journey: a new worker finishes every run, no send twice."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from temporalio.testing import WorkflowEnvironment

from engine.dsl.models import Journey
from engine.services.deploy import deploy_journey
from engine.services.enroll import Enroller
from engine.store import Store
from tests.harness import (
    RedisServer,
    person,
    sqlite_store,
    start_worker_process,
    stop_processes,
    wait_until,
)

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
) -> subprocess.Popen[bytes]:
    settings = {
        "JOURNEY_CONSOLE_PATH": str(outbox),
        "JOURNEY_CHANNELS": json.dumps({"sms": "console"}),
    }
    return start_worker_process(env, database, queue, log, redis, settings)


async def test_killed_worker_restarts_and_no_send_happens_twice(
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
        stop_processes(first, second)

    deliveries = await store.deliveries(journey_id=journey.id)
    assert len(deliveries) == PEOPLE * SENDS
    per_person = {(d.profile_id, d.step_id) for d in deliveries}
    assert len(per_person) == PEOPLE * SENDS
    # The console file keeps every line (at most once): no message written twice; each send
    # went out once, or was in flight at the kill and is logged unknown (written once or never).
    written = Counter(json.loads(line)["send_key"] for line in outbox.read_text().splitlines())
    assert max(written.values()) == 1
    assert set(written) <= {d.send_key for d in deliveries}
    for delivery in deliveries:
        assert delivery.status in ("sent", "unknown")
        if delivery.status == "sent":
            assert written[delivery.send_key] == 1
    await store.aclose()
