"""A journey worker wired to real parts for tests: SQLite store, console connector, Temporal;
and `journey` commands in processes of their own."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from ruamel.yaml import YAML
from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from connectors.registry import ConnectorRegistry, ConnectorSettings
from engine.activities.journey import JourneyActivities
from engine.analytics.model import JourneyReport
from engine.analytics.report import build_report
from engine.caps.checker import AllowAll, CapChecker
from engine.domain import JourneyVersion, Profile
from engine.dsl.models import Journey
from engine.dsl.policy import Policy
from engine.dsl.tiers import Tiers
from engine.metrics import EngineMetrics
from engine.services.deploy import deploy_journey
from engine.services.enroll import Enroller
from engine.services.events import EventRouter
from engine.store import Store
from engine.temporal import workflow_id
from engine.throwaway import RedisServer as RedisServer
from engine.throwaway import start_time_skipping as start_time_skipping
from engine.worker import build_worker
from engine.workflow.messages import RunResult, RunState


async def sqlite_store(directory: Path) -> Store:
    store = Store.from_url(f"sqlite+aiosqlite:///{directory / 'journey.db'}")
    await store.migrate()
    return store


@dataclass
class Harness:
    env: WorkflowEnvironment
    client: Client
    store: Store
    enroller: Enroller
    router: EventRouter
    outbox: Path
    templates_dir: Path
    task_queue: str
    metrics: EngineMetrics
    """What the worker's sends and the enroller's entries are counted in."""

    async def deploy(
        self, journey: Mapping[str, Any], templates: Mapping[str, Mapping[str, str]], now: datetime
    ) -> JourneyVersion:
        self.templates_dir.mkdir(parents=True, exist_ok=True)
        for name, fields in templates.items():
            with (self.templates_dir / f"{name}.yaml").open("w", encoding="utf-8") as out:
                YAML().dump(dict(fields), out)
        version, _ = await deploy_journey(
            self.store, Journey.model_validate(journey), self.templates_dir, now
        )
        await self.router.refresh()
        return version

    def handle(self, journey_id: str, profile_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(workflow_id(journey_id, profile_id))

    async def result(self, journey_id: str, profile_id: str, skip_time: bool = True) -> RunResult:
        """Wait for the run to end; on the time-skipping server, time skips while waiting.

        ``skip_time=False`` for runs with no timers left: with nothing to wait for but a
        scheduled activity, that server may jump to the activity's far-off default deadline.
        """
        handle = self.client.get_workflow_handle(
            workflow_id(journey_id, profile_id), result_type=RunResult
        )
        if not (skip_time and self.env.supports_time_skipping):
            return await handle.result()
        service = self.client.test_service
        await service.unlock_time_skipping(UnlockTimeSkippingRequest())
        try:
            return await handle.result()
        finally:
            await service.lock_time_skipping(LockTimeSkippingRequest())

    async def until_step(
        self, journey_id: str, profile_id: str, step: str, within: float = 10.0
    ) -> RunState:
        """Poll the run's state query until it rests in ``step`` (its first task is async)."""
        handle = self.handle(journey_id, profile_id)
        deadline = asyncio.get_running_loop().time() + within
        while True:
            try:
                state: RunState = await handle.query("state", result_type=RunState)
                if state.step == step:
                    return state
            except RPCError:
                pass  # not started yet
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{handle.id} did not reach step {step!r} in {within}s")
            await asyncio.sleep(0.05)

    def sent_lines(self) -> list[dict[str, Any]]:
        if not self.outbox.exists():
            return []
        return [json.loads(line) for line in self.outbox.read_text(encoding="utf-8").splitlines()]


@asynccontextmanager
async def running_worker(
    env: WorkflowEnvironment,
    store: Store,
    directory: Path,
    *,
    caps: CapChecker | None = None,
    time_scale: float = 1.0,
    connectors: ConnectorRegistry | None = None,
    unsubscribe_link: Callable[[str, str], str] | None = None,
    task_queue: str | None = None,
    outbox: Path | None = None,
    metrics: EngineMetrics | None = None,
) -> AsyncIterator[Harness]:
    """A worker on a fresh task queue (or ``task_queue``: a restarted worker takes over the runs
    of the one before); every channel goes to a console outbox file, unless ``connectors`` is
    given (the caller builds, and closes, its own registry)."""
    outbox = outbox or directory / f"outbox-{uuid.uuid4().hex[:6]}.jsonl"
    http = httpx.AsyncClient()
    registry = connectors or ConnectorRegistry.from_settings(
        ConnectorSettings(
            console_path=outbox,
            channels={c: "console" for c in ("email", "sms", "wecom", "push", "console")},
        ),
        http,
    )
    task_queue = task_queue or f"test-{uuid.uuid4().hex[:8]}"
    metrics = metrics or EngineMetrics()
    activities = JourneyActivities(
        store, caps or AllowAll(), registry, unsubscribe_link, metrics=metrics
    )
    client = env.client
    enroller = Enroller(store, client, task_queue, time_scale=time_scale, metrics=metrics)
    try:
        async with build_worker(client, task_queue, activities.all()):
            yield Harness(
                env=env,
                client=client,
                store=store,
                enroller=enroller,
                router=EventRouter(store, client, enroller),
                outbox=outbox,
                templates_dir=directory / "templates",
                task_queue=task_queue,
                metrics=metrics,
            )
    finally:
        if connectors is None:
            await registry.aclose()
        await http.aclose()


def person(profile_id: str, **attributes: Any) -> Profile:
    tags = frozenset(attributes.pop("tags", ()))
    timezone = attributes.pop("timezone", "Asia/Shanghai")
    return Profile(
        id=profile_id,
        attributes={"first_name": "小明", **attributes},
        tags=tags,
        timezone=timezone,
    )


def start_journey_process(
    command: Sequence[str],
    env: WorkflowEnvironment,
    database: Path | str,
    queue: str,
    log: Path,
    redis: RedisServer,
    settings: Mapping[str, str],
) -> subprocess.Popen[bytes]:
    """``journey <command>`` in its own process, on ``queue``, with the store at ``database`` (a
    SQLite file, or a database URL), a generous contact policy unless ``settings`` name one, and
    ``settings`` (``JOURNEY_*`` variables) on top; output to ``log``."""
    policy = log.parent / "policy.yaml"
    if "JOURNEY_POLICY_PATH" not in settings:
        policy.write_text("caps: {global: [{max: 100, per: 1d}]}\n", encoding="utf-8")
    environment = {
        **os.environ,
        "JOURNEY_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "JOURNEY_DATABASE_URL": (
            database if isinstance(database, str) else f"sqlite+aiosqlite:///{database}"
        ),
        "JOURNEY_TASK_QUEUE": queue,
        "JOURNEY_REDIS_URL": redis.url,
        "JOURNEY_POLICY_PATH": str(policy),
        **settings,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", *command],
        env=environment,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def start_worker_process(
    env: WorkflowEnvironment,
    database: Path | str,
    queue: str,
    log: Path,
    redis: RedisServer,
    settings: Mapping[str, str],
) -> subprocess.Popen[bytes]:
    """``journey worker`` in its own process (see :func:`start_journey_process`)."""
    return start_journey_process(["worker"], env, database, queue, log, redis, settings)


def stop_processes(*processes: subprocess.Popen[bytes] | None) -> None:
    """Terminate each process still running; one that does not stop within 20 s is killed."""
    for process in processes:
        if process is not None and process.poll() is None:
            process.terminate()
    for process in processes:
        if process is None:
            continue
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def print_logs(*logs: Path, last: int = 60) -> None:
    """The last lines of each process log, for a failed test's report (pytest shows stdout)."""
    for log in logs:
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        print(f"----- {log.name}: last {min(last, len(lines))} of {len(lines)} lines -----")
        print("\n".join(lines[-last:]))


async def wait_until(check: Callable[[], Any], within: float, every: float = 0.2) -> None:
    """Poll the coroutine function ``check`` every ``every`` s until it returns true; fail
    after ``within`` s."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(every)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread on a free port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("stub server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


async def journey_report(store: Store, journey: Journey) -> JourneyReport:
    """The report a marketer reads for ``journey`` (all its entries, the default policy)."""
    report = await build_report(store, [journey], policy=Policy(), tiers=Tiers())
    [only] = report.journeys
    return only
