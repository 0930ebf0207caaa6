"""The demo: seed people, deploy the example journeys, enter them, simulate purchases, report
(funnels in the terminal, the whole report as ``report.html`` under the demo's home).

Waits are divided by ``time_scale`` (default: one simulated day per real second), so a week-long
journey finishes in seconds on the real Temporal dev server, whose runs stay browsable afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import httpx
import redis.asyncio as aioredis
import structlog
from temporalio.client import Client

from connectors.registry import ConnectorRegistry, ConnectorSettings
from engine.activities.journey import JourneyActivities
from engine.analytics.html import render_html
from engine.analytics.text import format_journey
from engine.caps.redis_caps import RedisCapService
from engine.demo import DEMO_LOG
from engine.demo.population import population
from engine.domain import Event, JourneyVersion
from engine.dsl.loader import load_policy, load_segment, load_tiers
from engine.dsl.models import EventEntry, SegmentEntry
from engine.dsl.tiers import Tiers
from engine.services.deploy import deploy_file
from engine.services.enroll import Enroller
from engine.services.events import EventRouter
from engine.services.report import journeys_report
from engine.services.reporting import write_report
from engine.services.segments import segment_members
from engine.stack import EmbeddedStack, StackPorts
from engine.store import Store
from engine.worker import build_worker
from engine.worker_process import worker_process

log = structlog.get_logger(__name__)

DAY = 86400.0
ENTRY_BATCH = 200
"""People entered per call, so the progress bar moves."""
DEMO_JOURNEYS = ("cart_recovery.yaml", "welcome.yaml", "winback.yaml")
"""Scenarios 1-3; the other examples in journeys/ are validated and deployed by the tests."""


@dataclass(frozen=True)
class DemoOptions:
    home: Path
    journeys_dir: Path
    profiles: int = 2000
    seed: int = 7
    time_scale: float = DAY
    ports: StackPorts = field(default_factory=StackPorts)
    purchase_rate: float = 0.25
    """Share of entered people who buy during the simulated week."""
    worker_process: bool = True
    """Run the journey worker as a process of its own (`journey worker`); False runs it in this
    process, next to the demo's driver (as before; kept to measure the difference)."""
    max_concurrent_activities: int = 100
    """Of the worker in this process (``worker_process=False``)."""

    @property
    def log_path(self) -> Path:
        """Where the worker process logs (``journey demo`` logs there too)."""
        return self.home / DEMO_LOG


class Progress(Protocol):
    """How the demo shows a phase: ``phase(description, total)`` yields ``advance(n)``."""

    def phase(
        self, description: str, total: int
    ) -> contextlib.AbstractContextManager[Callable[[int], None]]: ...

    def finish(self) -> None:
        """Every phase is over: the summary follows."""


class NoProgress:
    @contextmanager
    def phase(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        yield lambda n: None

    def finish(self) -> None:
        pass


async def run_demo(
    options: DemoOptions, say: Callable[[str], None], progress: Progress | None = None
) -> None:
    """The demo; ``say`` prints a line, ``progress`` shows each phase (default: nothing)."""
    shown = progress or NoProgress()
    started = time.monotonic()
    options.home.mkdir(parents=True, exist_ok=True)
    database = options.home / "demo.db"
    for stale in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        stale.unlink(missing_ok=True)
    messages = options.home / "demo-messages.jsonl"
    messages.unlink(missing_ok=True)

    stack = EmbeddedStack(options.home, options.ports)
    say(f"starting Temporal ({stack.temporal_address}, UI {stack.ui_url}) and Redis ...")
    client = await stack.start()
    store = Store.from_url(f"sqlite+aiosqlite:///{database}")
    redis_client = aioredis.Redis.from_url(stack.redis_url)
    http = httpx.AsyncClient()
    registry = ConnectorRegistry.from_settings(ConnectorSettings(console_path=messages), http)
    task_queue = f"demo-{uuid.uuid4().hex[:8]}"
    try:
        left = await _end_leftover_runs(client)
        if left:
            say(f"ended {left} runs left open by an interrupted earlier demo")
        await store.migrate()
        people = population(options.profiles, options.seed)
        await store.upsert_profiles(people)
        say(f"seeded {len(people)} synthetic profiles (seed {options.seed})")

        now = datetime.now(UTC)
        versions: list[JourneyVersion] = []
        for path in [options.journeys_dir / name for name in DEMO_JOURNEYS]:
            version, _ = await deploy_file(store, path, now)
            versions.append(version)
        say("deployed " + ", ".join(f"{v.journey_id} v{v.version}" for v in versions))

        policy = load_policy(options.journeys_dir / "policy.yaml")
        async with contextlib.AsyncExitStack() as workers:
            if options.worker_process:
                settings = {
                    "JOURNEY_HOME": str(options.home),
                    "JOURNEY_TEMPORAL_ADDRESS": stack.temporal_address,
                    "JOURNEY_TASK_QUEUE": task_queue,
                    "JOURNEY_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
                    "JOURNEY_REDIS_URL": stack.redis_url,
                    "JOURNEY_JOURNEYS_DIR": str(options.journeys_dir),
                    "JOURNEY_POLICY_PATH": str(options.journeys_dir / "policy.yaml"),
                    "JOURNEY_CONSOLE_PATH": str(messages),
                    "JOURNEY_TIME_SCALE": str(options.time_scale),
                }
                for role in ("workflows", "activities"):
                    await workers.enter_async_context(
                        worker_process(settings, options.log_path, role=role)
                    )
            else:
                caps = RedisCapService(redis_client, policy)
                activities = JourneyActivities(store, caps, registry)
                await workers.enter_async_context(
                    build_worker(
                        client,
                        task_queue,
                        activities.all(),
                        max_concurrent_activities=options.max_concurrent_activities,
                    )
                )
            enroller = Enroller(store, client, task_queue, time_scale=options.time_scale)
            router = EventRouter(store, client, enroller)
            entered = await _enter(options, store, enroller, router, versions, now, say, shown)
            await _simulate_purchases(options, router, entered, say, shown)
            await _wait_for_runs(store, versions, within=90, say=say, progress=shown)

        shown.finish()
        say("")
        report = await journeys_report(
            store,
            [v.journey_id for v in versions],
            policy=policy,
            tiers=_tiers(options.journeys_dir / "tiers.yaml"),
        )
        for journey_report in report.journeys:
            say(format_journey(journey_report))
            say("")
        page = write_report(options.home / "report.html", render_html(report))
        sent = sum(1 for _ in messages.open(encoding="utf-8")) if messages.exists() else 0
        say(f"{sent} messages written to {messages} (console connector)")
        say(f"done in {time.monotonic() - started:.0f}s.")
        say(
            "Browse the runs in the Temporal UI: run `journey dev` and open "
            f"{stack.ui_url} — filter with JourneyId = 'cart-recovery' (or ProfileId, "
            "JourneyStep); the runs are kept in "
            f"{options.home / 'temporal.db'}."
        )
        say(f"report: {page} (one page: open it in a browser, no network needed)")
    finally:
        await registry.aclose()
        await http.aclose()
        await redis_client.aclose()
        await store.aclose()
        await stack.stop()


def _tiers(path: Path) -> Tiers:
    return load_tiers(path) if path.exists() else Tiers()


async def _end_leftover_runs(client: Client) -> int:
    """The demo starts from a fresh store; runs of an interrupted demo would block re-entry."""
    handles = [
        client.get_workflow_handle(w.id, run_id=w.run_id)
        async for w in client.list_workflows(
            "ExecutionStatus = 'Running' AND JourneyId IS NOT NULL"
        )
    ]
    await asyncio.gather(*(h.terminate(reason="a new demo started") for h in handles))
    return len(handles)


async def _enter(
    options: DemoOptions,
    store: Store,
    enroller: Enroller,
    router: EventRouter,
    versions: list[JourneyVersion],
    now: datetime,
    say: Callable[[str], None],
    progress: Progress,
) -> dict[str, list[str]]:
    """Enter segment journeys from their segment, event journeys from registration events."""
    entered: dict[str, list[str]] = {}
    for version in versions:
        journey = enroller.journey(version)
        if isinstance(journey.entry, SegmentEntry):
            segment = load_segment(
                options.journeys_dir / "segments" / f"{journey.entry.segment}.yaml"
            )
            members = await segment_members(store, segment)
            started = 0
            with progress.phase(f"entering {journey.id}", len(members)) as advance:
                for at in range(0, len(members), ENTRY_BATCH):
                    batch = members[at : at + ENTRY_BATCH]
                    started += (await enroller.enroll(version, batch, now))["started"]
                    advance(len(batch))
            entered[journey.id] = members
            say(f"{journey.id}: segment {segment.id} has {len(members)} people; {started} entered")
        elif isinstance(journey.entry, EventEntry):
            newcomers = [
                p.id
                for batch in [b async for b in store.iter_profiles()]
                for p in batch
                if p.attributes.get("registered_days_ago") == 0
            ]
            await router.refresh()
            with progress.phase(f"entering {journey.id}", len(newcomers)) as advance:

                async def register(pid: str, event: str, advance: Callable[[int], None]) -> None:
                    await router.ingest(Event(f"reg-{pid}", pid, event, now), now)
                    advance(1)

                await asyncio.gather(
                    *(register(pid, journey.entry.event, advance) for pid in newcomers)
                )
            entered[journey.id] = newcomers
            say(f"{journey.id}: {len(newcomers)} {journey.entry.event} events")
    return entered


async def _simulate_purchases(
    options: DemoOptions,
    router: EventRouter,
    entered: dict[str, list[str]],
    say: Callable[[str], None],
    progress: Progress,
) -> None:
    """Some people buy at random moments of the simulated week; each order ends their runs."""
    rng = random.Random(options.seed)
    buyers = sorted(
        {pid for ids in entered.values() for pid in ids if rng.random() < options.purchase_rate}
    )
    week = 7 * DAY / options.time_scale
    say(f"simulating {len(buyers)} purchases over one simulated week ({week:.0f}s) ...")

    origin, started = datetime.now(UTC), time.monotonic()
    with progress.phase("simulating purchases", len(buyers)) as advance:

        async def buy(pid: str, delay: float) -> None:
            await asyncio.sleep(delay)
            # Stamped on the journeys' scaled timeline (their sends are), so the report's last
            # touch (the last message sent before the order) compares like with like.
            at = origin + timedelta(seconds=(time.monotonic() - started) * options.time_scale)
            amount = rng.choice((59, 99, 199))
            await router.ingest(
                Event(f"order-{pid}", pid, "order_paid", at, {"amount": amount}),
                datetime.now(UTC),
            )
            advance(1)

        await asyncio.gather(*(buy(pid, rng.uniform(0, week)) for pid in buyers))


async def _wait_for_runs(
    store: Store,
    versions: list[JourneyVersion],
    within: float,
    say: Callable[[str], None],
    progress: Progress,
) -> None:
    deadline = time.monotonic() + within
    runs = [e for v in versions for e in await store.enrollments(v.journey_id)]
    with progress.phase("runs finishing", len(runs)) as advance:
        ended = 0
        while True:
            active = 0
            for version in versions:
                enrollments = await store.enrollments(version.journey_id)
                active += sum(e.status == "active" for e in enrollments)
            advance(len(runs) - active - ended)
            ended = len(runs) - active
            if active == 0:
                return
            if time.monotonic() > deadline:
                say(
                    f"{active} runs still active after {within:.0f}s; "
                    "the report shows them as active"
                )
                return
            await asyncio.sleep(0.5)
