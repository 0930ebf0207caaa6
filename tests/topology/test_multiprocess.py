"""The production topology on one box: a PostgreSQL store, one Temporal dev server, one Redis,
three `journey worker` processes and two `journey api` processes. 2,000 people enter a journey
of two webhook sends through both APIs (half each); mid-wave one worker is SIGKILLed and another
started. Every run finishes, every send reaches the receiver and is acted on once, and the contact
policy's cap holds for every person, also for those a message earlier today left one touch.

Real parts throughout: the processes are the `journey` commands an operator runs, the receiver a
local HTTP server that, as the Standard Webhooks specification asks, acts once per ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from ruamel.yaml import YAML
from standardwebhooks import Webhook
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from engine.caps.checker import CapRequest
from engine.caps.redis_caps import RedisCapService
from engine.dsl.models import Journey
from engine.dsl.policy import Policy
from engine.servers import free_port
from engine.services.deploy import deploy_journey
from engine.store import Store
from engine.temporal import workflow_id
from tests.harness import (
    RedisServer,
    print_logs,
    serve,
    start_journey_process,
    stop_processes,
    wait_until,
)
from tests.store.conftest import Targets

BUDGET = 1200
"""Seconds for the whole wave: a guard against a hang, generous for a busy shared machine."""
pytestmark = [pytest.mark.topology, pytest.mark.timeout(BUDGET + 180)]

PEOPLE = 2000
SENDS = 2
TOUCHED_EVERY = 10
"""Every tenth person got a message from another campaign earlier today: one touch left."""
POLICY = {"caps": {"global": [{"max": 2, "per": "1d"}]}, "on_capped": {"action": "skip"}}
CAP = 2
API_KEY = "topology-key-0123456789abcdef"
SECRET = "topology-webhook-secret"
BATCH = 250


@dataclass
class Arrival:
    key: str
    """The request's webhook-id: the engine's send key."""
    profile_id: str


@dataclass
class Receiver:
    """ASGI webhook receiver: verifies each request's Standard Webhooks signature, notes it and
    answers 200 with an id, the same for a repeat of a ``webhook-id`` (which such a receiver acts
    on only once)."""

    arrivals: list[Arrival] = field(default_factory=list)
    verifier: Webhook = field(default_factory=lambda: Webhook(SECRET.encode()))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            part = await receive()
            body += part.get("body", b"")
            if not part.get("more_body", False):
                break
        headers = {name.decode(): value.decode() for name, value in scope["headers"]}
        message = self.verifier.verify(body, headers)
        key = headers["webhook-id"]
        self.arrivals.append(Arrival(key, message["to"]))
        answer = json.dumps({"id": f"r-{key}"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})


@dataclass
class PostgresStore:
    store: Store
    url: str
    """The store's URL as a `journey` process reaches it: its schema on the search path."""


@pytest.fixture
async def postgres(postgres_url: str, tmp_path: Path) -> AsyncIterator[PostgresStore]:
    """A fresh, migrated schema of its own, dropped afterwards."""
    targets = Targets(tmp_path)
    target = targets.new("postgresql")
    store = target.open()
    try:
        await store.migrate()
        yield PostgresStore(store, f"{target.url}?options=-csearch_path%3D{target.schema}")
    finally:
        await store.aclose()
        await targets.drop_all()


async def touch_earlier_today(redis: RedisServer, people: Sequence[str], at: Any) -> None:
    """Count a message of another campaign for each of ``people``, as its send would have."""
    client = aioredis.Redis.from_url(redis.url)
    caps = RedisCapService(client, Policy.model_validate(POLICY))
    try:
        for profile_id in people:
            decision = await caps.reserve(
                CapRequest(
                    send_key=f"earlier:{profile_id}",
                    profile_id=profile_id,
                    journey_id="earlier-campaign",
                    channel="webhook",
                    priority=50,
                    at=at,
                    timezone="Asia/Shanghai",
                )
            )
            assert decision.allowed
    finally:
        await client.aclose()


async def retried_sends(
    env: WorkflowEnvironment, journey_id: str, profile_id: str
) -> dict[str, str]:
    """Send key -> why its last attempt before the one that finished failed ("timeout" when
    Temporal timed it out), for the run's sends that took more than one attempt."""
    handle = env.client.get_workflow_handle(workflow_id(journey_id, profile_id))
    history = await handle.fetch_history()
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    retried: dict[str, str] = {}
    for event in history.events:
        started = event.activity_task_started_event_attributes
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED or started.attempt < 2:
            continue
        failure = started.last_failure
        why = "timeout" if failure.HasField("timeout_failure_info") else failure.message
        attempted = scheduled[started.scheduled_event_id]
        if attempted.activity_type.name == "send":
            [payload] = attempted.input.payloads
            retried[json.loads(payload.data)["send_key"]] = why
    return retried


async def api_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=url) as probe:

        async def answers() -> bool:
            assert process.poll() is None, "the API process exited"
            try:
                return (await probe.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(answers, within=BUDGET)


async def enter(url: str, journey_id: str, people: Sequence[str]) -> Counter[str]:
    """Create ``people`` and enter them into the journey through the API at ``url``."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    outcomes: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as api:
        profiles = [{"id": p, "attributes": {"first_name": "小明"}} for p in people]
        created = await api.post("/v1/profiles", json={"profiles": profiles})
        assert created.status_code == 200, created.text
        for start in range(0, len(people), BATCH):
            batch = list(people[start : start + BATCH])
            answer = await api.post(
                f"/v1/journeys/{journey_id}/trigger", json={"profile_ids": batch}
            )
            assert answer.status_code == 200, answer.text
            outcomes.update(answer.json()["counts"])
    return outcomes


async def test_killed_worker_among_many_processes_loses_no_run_and_doubles_no_send(
    postgres: PostgresStore,
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    redis_server: RedisServer,
) -> None:
    store = postgres.store
    templates = tmp_path / "templates"
    templates.mkdir()
    YAML().dump({"text": "{{ profile.first_name }}，新品到了"}, templates / "news.yaml")
    journey = Journey.model_validate(
        {
            "id": f"topology-{uuid.uuid4().hex[:6]}",
            "name": "n",
            "entry": {"api": True},
            "steps": [
                {"id": "first", "send": {"channel": "webhook", "template": "news"}},
                {"id": "pause", "wait": "2s"},
                {"id": "second", "send": {"channel": "webhook", "template": "news"}},
            ],
        }
    )
    now = await dev_env.get_current_time()
    await deploy_journey(store, journey, templates, now)
    # Redis outlives the test: people of its own, so no other test's touches count here.
    tag = uuid.uuid4().hex[:6]
    people = [f"{tag}-{i}" for i in range(PEOPLE)]
    touched = set(people[::TOUCHED_EVERY])
    await touch_earlier_today(redis_server, sorted(touched), now)
    policy = tmp_path / "contact-policy.yaml"
    policy.write_text(json.dumps(POLICY), encoding="utf-8")

    receiver = Receiver()
    began = time.monotonic()

    def note(what: str) -> None:
        """A timeline in the test's output: where a slow run spends its time."""
        print(f"{time.monotonic() - began:6.1f}s {what}: {len(receiver.arrivals)} arrivals")

    queue = f"topology-{tag}"
    logs: list[Path] = []
    processes: list[subprocess.Popen[bytes]] = []

    def start(command: list[str], settings: dict[str, str]) -> subprocess.Popen[bytes]:
        log = tmp_path / f"{command[0]}{len(logs) + 1}.log"
        logs.append(log)
        process = start_journey_process(
            command,
            dev_env,
            postgres.url,
            queue,
            log,
            redis_server,
            {"JOURNEY_POLICY_PATH": str(policy), "JOURNEY_LOG_LEVEL": "warning", **settings},
        )
        processes.append(process)
        return process

    with serve(receiver) as receiver_url:
        workers_settings = {
            "JOURNEY_CHANNELS": json.dumps({"webhook": "webhook"}),
            "JOURNEY_WEBHOOK_URL": f"{receiver_url}/hook",
            "JOURNEY_WEBHOOK_SECRET": SECRET,
        }
        try:
            # One budget for the whole wave, below pytest's timeout: the processes' logs are
            # printed and the processes stopped before the fixtures tear down.
            async with asyncio.timeout(BUDGET):
                workers = [start(["worker"], workers_settings) for _ in range(3)]
                ports = [free_port(), free_port()]
                apis = [
                    start(["api", "--port", str(port)], {"JOURNEY_API_KEYS": json.dumps([API_KEY])})
                    for port in ports
                ]
                urls = [f"http://127.0.0.1:{port}" for port in ports]
                for url, process in zip(urls, apis, strict=True):
                    await api_ready(url, process)
                note("APIs ready")

                half = PEOPLE // 2
                entered = await asyncio.gather(
                    enter(urls[0], journey.id, people[:half]),
                    enter(urls[1], journey.id, people[half:]),
                )
                note("entered")
                assert [dict(e) for e in entered] == [{"started": half}, {"started": PEOPLE - half}]

                expected = PEOPLE * SENDS - len(touched)

                async def mid_wave() -> bool:
                    return len(receiver.arrivals) >= expected // 4

                await wait_until(mid_wave, within=BUDGET)
                workers[0].send_signal(signal.SIGKILL)
                workers[0].wait(timeout=10)
                note("worker 1 killed")
                assert len(receiver.arrivals) < expected, "the wave ended before the kill"
                start(["worker"], workers_settings)

                async def all_finished() -> bool:
                    return (await store.live_runs())[journey.id] == 0

                await wait_until(all_finished, within=BUDGET, every=1.0)
                note("every run finished")
        except BaseException:
            print_logs(*logs)
            raise
        finally:
            stop_processes(*processes)

    runs = await store.enrollments(journey.id)
    assert Counter(r.status for r in runs) == {"completed": PEOPLE}
    completed = await dev_env.client.count_workflows(
        f'JourneyId = "{journey.id}" AND ExecutionStatus = "Completed"'
    )
    assert completed.count == PEOPLE

    # Every send the delivery log calls sent reached the receiver, and nothing else did.
    deliveries = await store.deliveries(journey_id=journey.id)
    assert len({d.send_key for d in deliveries}) == len(deliveries) == PEOPLE * SENDS
    statuses = Counter(d.status for d in deliveries)
    assert statuses == {"sent": expected, "suppressed": len(touched)}
    arrived = Counter(a.key for a in receiver.arrivals)
    assert set(arrived) == {d.send_key for d in deliveries if d.status == "sent"}

    # Acted on once per key (the receiver drops a repeat of a webhook-id), and a key came again
    # only where an attempt died with the killed worker: its send ran again after a timeout.
    repeated = {key for key, count in arrived.items() if count > 1}
    assert max(arrived.values()) <= 2
    by_key = {d.send_key: d for d in deliveries}
    for key in repeated:
        retries = await retried_sends(dev_env, journey.id, by_key[key].profile_id)
        assert retries.get(key) == "timeout", (key, retries)
    print(f"webhook-ids that came twice (in flight at the kill): {len(repeated)} of {len(arrived)}")

    # The cap: at most two touches today per person, counting the earlier campaign's.
    keys_of: dict[str, set[str]] = {p: set() for p in people}
    for arrival in receiver.arrivals:
        keys_of[arrival.profile_id].add(arrival.key)
    for profile_id, keys in keys_of.items():
        earlier = 1 if profile_id in touched else 0
        assert len(keys) + earlier <= CAP, profile_id
    suppressed = [d for d in deliveries if d.status == "suppressed"]
    assert {(d.profile_id, d.step_id) for d in suppressed} == {(p, "second") for p in touched}
    assert {d.reason for d in suppressed} == {"global:2/1d"}
