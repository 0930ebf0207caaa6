"""Scale: 100,000 people waiting a week on the embedded stack, then a morning wave of sends.

What runs: the embedded stack (Temporal dev server with SQLite persistence, Redis), a SQLite
store, a local HTTP receiver in its own process (bench.receiver), and the worker as two
processes, ``workflows`` and ``activities``, as `journey demo` and compose run them (this
module's ``worker`` entry is `journey worker --only ...` with the hand-written baseline
registered too, so both waves run on the very same processes). The journey, ``scale``:

    steps: [{id: wait, wait: 7d}, {id: send, send: {channel: webhook, ...}}, {id: done, exit: {}}]
    caps: [{max: 1, per: 7d}]       # and the bench's contact policy: global 1 a day, skip

1. Enrolment. ``Enroller.enroll`` enters the people (version 1: they wait 7 days), against raw
   ``client.start_workflow`` calls of the same workflow with the same arguments at the same
   concurrency (bench.ingest's), in alternating rounds while the workers take every new run to
   its timer; each side starts once the workers have caught up, so neither pays for the other's
   runs. The raw runs (a fifth as many, ``--raw``) wait 7 days too and count among the waiting
   runs.
2. Waiting. With every run at its timer: the RSS of the Temporal server and of the two worker
   processes and the size of the Temporal and store databases (with their WAL files), as
   growth since the empty stack per 10,000 waiting runs.
3. The wave. In production a morning's ``wait: {until: "10:00"}`` wakes every run whose week
   ended overnight in the same minute. Timers cannot be moved and scaled time cannot line up
   runs started minutes apart (``time_scale`` divides each run's wait, so their wake-ups stay
   as far apart as their starts), so the wave is made on the real clock: the last ``--wave``
   people enter version 2 of the same journey (a redeploy; runs in flight keep version 1),
   whose first step is ``wait: {until: "HH:MM"}`` on the people's clock (UTC) instead of 7d,
   HH:MM being the first whole minute after they will all be waiting, estimated from the pace
   measured so far. A waiting run costs the server and the worker the same whatever its timer's
   length, so the measurements of step 2 hold for them too. At HH:MM they wake together and
   send through the caps (Redis) and the webhook connector to the receiver; a tenth of them
   (``--capped``) were sent something else earlier that day (reserved through the cap service),
   so the policy's one-a-day cap must refuse theirs. Measured: time to drain (HH:MM to the last
   ledger write), sends per second (messages the receiver got / time to drain), workflow-task
   timeouts from HH:MM on (every wave run's history: start-to-close, the worker held a task
   over 10 s; sticky schedule-to-start, a task waited 5 s for the worker that cached the run
   and went to the shared queue), sends the receiver got over a cap (distinct send keys per
   person beyond their allowance), and, from the workflow worker's own SDK metrics
   (bench.sdk_metrics, scraped before and after the wave), workflow-task execution and
   schedule-to-start latency during the wave, plus TMPRL1104 warnings in its log.
4. The baseline wave, after the journey's has drained (sequential, same run, same processes,
   the same number of runs still waiting): as many fresh people, each with a ledger row, run
   `bench.handwritten.HandWrittenWave` (sleep until the time of day, the same ``send``
   activity with the same caps, the ledger write), waking at a later minute chosen the same way
   (version 3 of the journey carries it and the templates). The second wave finds the Temporal
   database grown by the first one's finished runs, which if anything slows the baseline.

    python -m bench.scale [--people 100000] [--wave N] [--raw N] [--rounds 10]

``--people 2000`` is a quick run. Before starting, the run's memory and disk are estimated from
the per-10,000 figures in `FOOTPRINT`; a run that would not fit stops there, and one that runs
the machine low anyway stops (servers shut down) with a message (bench.room). The workers run
with bytecode caching on whatever ``PYTHONDONTWRITEBYTECODE`` says, as in production: without
it the sandbox compiles the interpreter from source for every run it loads (a 2,000-person run
on a loaded machine then logged 260 TMPRL1104 warnings in its 500-run wave; with it on, a
20,000-person run logged 1 in its 4,000-run wave).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
import structlog
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.client import Client

from bench.connectors import receiver
from bench.handwritten import HandWrittenWave
from bench.ingest import raw_starts
from bench.room import (
    Footprint,
    GiB,
    Machine,
    MiB,
    OutOfRoom,
    children,
    guarded,
    rss,
    size_of,
    too_large,
)
from bench.sdk_metrics import (
    SLOW_WORKFLOW_TASK,
    WORKFLOW_TASK_EXECUTION,
    WORKFLOW_TASK_SCHEDULE_TO_START,
    Buckets,
    bound,
    find,
    histograms,
    scrape,
    since,
    unit,
)
from engine.caps.checker import CapRequest
from engine.caps.redis_caps import RedisCapService
from engine.cli.progress import Phases, live_progress
from engine.domain import JourneyVersion, Profile
from engine.dsl.loader import load_policy
from engine.dsl.models import Journey
from engine.servers import free_port
from engine.services.deploy import deploy_journey
from engine.services.enroll import Enroller
from engine.stack import EmbeddedStack, StackPorts
from engine.store import Store
from engine.store.tables import deliveries, enrollments
from engine.temporal import workflow_id
from engine.worker_process import worker_process
from engine.workflow.messages import JourneyInput

JOURNEY = "scale"
BASELINE = "hand-written"
"""The ledger's journey id of the baseline's runs (their sends count under ``scale``)."""
TIMEZONE = "UTC"
POLICY = """\
timezone: UTC
caps:
  global: [{max: 1, per: 1d}]
  channels:
    webhook: [{max: 3, per: 7d}]
on_capped: {action: skip}
"""
TEMPLATE = 'text: "Good morning {{ profile.id }}: your week is up."\n'
CALL = 1000
"""People per ``enroll`` call, so the bar moves."""
STALLED = 120
"""Seconds without a run finishing after which a wave counts as drained."""
FOOTPRINT = Footprint(
    memory_fixed=1 * GiB,
    memory_per_10k=700 * MiB,
    disk_fixed=100 * MiB,
    disk_per_10k=400 * MiB,
)
"""For the check before a run (bench.room), rounded up from this bench's own figures on
2026-12-06: the empty stack and two workers at full workflow cache, then per 10,000 waiting
runs about 630 MB of Temporal server and worker memory (2,000 people; the workers' part stops
growing once their workflow cache is full) and 230 MB of Temporal database plus its WAL."""


WAITING = f"JourneyId = '{JOURNEY}' AND ExecutionStatus = 'Running' AND JourneyStep = 'wait'"
"""Runs of the journey at their timer (a run upserts its step as it starts to wait)."""


def wave_minute(work: float) -> datetime:
    """The first whole minute after ``work`` seconds (estimated) with room to spare: half as
    much again and 45 s for the measurements."""
    at = datetime.now(UTC) + timedelta(seconds=1.5 * work + 45)
    return at.replace(second=0, microsecond=0) + timedelta(minutes=1)


def journey(wait: str | dict[str, str]) -> Journey:
    return Journey.model_validate(
        {
            "id": JOURNEY,
            "name": "scale: a week's wait, then a morning message",
            "entry": {"api": True},
            "caps": [{"max": 1, "per": "7d"}],
            "steps": [
                {"id": "wait", "wait": wait},
                {"id": "send", "send": {"channel": "webhook", "template": "scale_morning"}},
                {"id": "done", "exit": {}},
            ],
        }
    )


@dataclass
class Processes:
    """Process ids, to read their memory."""

    temporal: int = 0
    workflows: int = 0
    activities: int = 0

    def memory(self) -> dict[str, int]:
        return {
            "Temporal server": rss(self.temporal),
            "worker (workflows)": rss(self.workflows),
            "worker (activities)": rss(self.activities),
        }


@dataclass
class Footprints:
    """Memory and database sizes, empty and with every run waiting."""

    empty: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)
    runs: int = 0


@dataclass
class Wave:
    """One wave's figures."""

    name: str
    runs: int
    capped: frozenset[str]
    """People sent something else earlier that day: the one-a-day cap refuses theirs."""
    drain: float = math.nan
    sent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    timeouts: int = 0
    """Workflow tasks a worker held past their 10 s start-to-close timeout, since the wave
    minute (each was handed out again)."""
    sticky_timeouts: int = 0
    """Tasks that waited over 5 s on a worker's sticky queue and went to the shared one instead
    (no harm done beyond the wait and a replay)."""
    over_cap: int = 0
    slow_warnings: int = 0
    execution: tuple[str, Buckets] | None = None
    schedule_to_start: tuple[str, Buckets] | None = None
    late: bool = False
    """The wave minute came before every run was waiting."""

    @property
    def rate(self) -> float:
        return self.sent / self.drain if self.drain > 0 else math.nan

    def line(self) -> str:
        """The figures in one line, printed as soon as the wave is measured."""
        return (
            f"{self.name} wave: {self.runs:,} runs drained in {self.drain:.1f}s, {self.sent:,} "
            f"sent ({self.rate:.1f}/s), {self.over_cap} over a cap, {self.timeouts} workflow-"
            f"task timeouts, {self.slow_warnings} {SLOW_WORKFLOW_TASK}, workflow task execution "
            f"p50/p99 {_quantiles(self.execution)}, schedule-to-start "
            f"{_quantiles(self.schedule_to_start)}"
        )


@dataclass
class Result:
    people: int
    raw: int
    enrolled_per_s: float = math.nan
    raw_per_s: float = math.nan
    enrol_seconds: float = 0.0
    footprints: Footprints = field(default_factory=Footprints)
    waves: list[Wave] = field(default_factory=list)


class Bench:
    def __init__(self, args: argparse.Namespace, say: Callable[[str], None], phases: Phases):
        self.args = args
        self.say = say
        self.phases = phases
        self.home: Path = args.home
        self.queue = f"scale-{uuid.uuid4().hex[:6]}"
        self.processes = Processes()
        self.result = Result(args.people, args.raw)
        self.enrolled = self.raw_started = 0
        self.count_cost = 0.0
        self.raw_seconds = 0.0

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> Result:
        journeys = self.home / "journeys"
        (journeys / "templates").mkdir(parents=True, exist_ok=True)
        (journeys / "policy.yaml").write_text(POLICY, encoding="utf-8")
        (journeys / "templates" / "scale_morning.yaml").write_text(TEMPLATE, encoding="utf-8")
        stack = EmbeddedStack(self.home, StackPorts(free_port(), free_port(), free_port()))
        self.say(f"home {self.home}; starting Temporal and Redis ...")
        client = await stack.start()
        self.processes.temporal = next(
            pid for pid, command in children().items() if "start-dev" in command
        )
        store = Store.from_url(f"sqlite+aiosqlite:///{self.home / 'journey.db'}")
        try:
            await store.migrate()
            async with (
                receiver("bench.receiver:recording_app") as url,
                contextlib.AsyncExitStack() as workers,
            ):
                metrics = f"127.0.0.1:{free_port()}"
                settings = {
                    "JOURNEY_HOME": str(self.home),
                    "JOURNEY_TEMPORAL_ADDRESS": stack.temporal_address,
                    "JOURNEY_TASK_QUEUE": self.queue,
                    "JOURNEY_DATABASE_URL": f"sqlite+aiosqlite:///{self.home / 'journey.db'}",
                    "JOURNEY_REDIS_URL": stack.redis_url,
                    "JOURNEY_JOURNEYS_DIR": str(journeys),
                    "JOURNEY_POLICY_PATH": str(journeys / "policy.yaml"),
                    "JOURNEY_WEBHOOK_URL": url,
                    "JOURNEY_WEBHOOK_SECRET": "bench-secret",
                    # Bytecode caching on, as in production (the image compiles it): without it
                    # the sandbox compiles the interpreter from source for every new run.
                    "PYTHONDONTWRITEBYTECODE": "",
                }
                for role in ("workflows", "activities"):
                    extra = {"JOURNEY_TEMPORAL_METRICS_PORT": metrics.split(":")[1]}
                    pid = await workers.enter_async_context(
                        worker_process(
                            {**settings, **(extra if role == "workflows" else {})},
                            self.log,
                            role=role,
                            module="bench.scale",
                        )
                    )
                    setattr(self.processes, role, pid)
                self.metrics_url = f"http://{metrics}/metrics"
                self.receiver_url = url
                policy = load_policy(journeys / "policy.yaml")
                caps = aioredis.Redis.from_url(stack.redis_url)
                try:
                    self.caps = RedisCapService(caps, policy)
                    await self.stages(client, store, journeys / "templates")
                finally:
                    await caps.aclose()
        finally:
            await store.aclose()
            await stack.stop()
        return self.result

    @property
    def log(self) -> Path:
        return self.home / "workers.log"

    async def stages(self, client: Client, store: Store, templates: Path) -> None:
        args = self.args
        people = [f"p{n:07d}" for n in range(args.people)]
        self.result.footprints.empty = self.footprint()
        await self.seed(store, people)
        week, _ = await deploy_journey(store, journey("7d"), templates, datetime.now(UTC))
        enroller = Enroller(store, client, self.queue, concurrency=args.concurrency)
        wave_people = people[len(people) - args.wave :]
        raw = [f"r{n:07d}" for n in range(args.raw)]
        raw_week = args.raw * (len(people) - len(wave_people)) // max(1, len(people))
        with self.phases.phase("enrolling", len(people) + len(raw)) as advance:
            weekly = people[: len(people) - len(wave_people)]
            began = time.monotonic()
            await self.enrol(client, enroller, week, weekly, raw[:raw_week], week, advance)
            # The pace on the clock, waits for the workers included, sets the wave's minute.
            pace = (len(weekly) + raw_week) / (time.monotonic() - began)
            behind = self.enrolled + self.raw_started - await self.count(client, WAITING)
            minute = wave_minute((len(wave_people) + args.raw - raw_week + behind) / pace)
            version, _ = await deploy_journey(
                store, journey({"until": f"{minute:%H:%M}"}), templates, datetime.now(UTC)
            )
            self.say(f"the journey's wave: {len(wave_people):,} runs wake at {minute:%H:%M} UTC")
            await self.enrol(client, enroller, version, wave_people, raw[raw_week:], week, advance)
        total = len(people) + len(raw)
        result = self.result
        self.say(
            f"enrolled {self.enrolled:,} at {result.enrolled_per_s:.1f}/s, raw starts "
            f"{self.raw_started:,} at {result.raw_per_s:.1f}/s"
        )
        late = not await self.all_waiting(client, total, minute)
        footprints = self.result.footprints
        footprints.waiting, footprints.runs = self.footprint(), total
        self.say(
            f"{total:,} runs waiting: "
            + ", ".join(f"{name} {size / MiB:.0f} MB" for name, size in footprints.waiting.items())
        )
        first = Wave("journey", len(wave_people), self.capped(wave_people), late=late)
        await self.precap(first.capped)
        await self.wave(client, store, first, minute, f"JourneyId = '{JOURNEY}'", version.version)
        self.result.waves.append(first)
        self.say(first.line())

        baseline = [f"h{n:07d}" for n in range(args.wave)]
        await store.upsert_profiles([Profile(pid, timezone=TIMEZONE) for pid in baseline])
        second = Wave(BASELINE, len(baseline), self.capped(baseline))
        await self.precap(second.capped)
        minute = wave_minute(len(baseline) / pace)
        version, _ = await deploy_journey(
            store, journey({"until": f"{minute:%H:%M}"}), templates, datetime.now(UTC)
        )
        self.say(f"the baseline's wave: {len(baseline):,} runs wake at {minute:%H:%M} UTC")
        await self.start_baseline(client, store, version, baseline)
        query = "WorkflowType = 'HandWrittenWave'"
        second.late = not await self.all_started(client, query, len(baseline), minute)
        await self.wave(client, store, second, minute, query, version.version)
        self.result.waves.append(second)
        self.say(second.line())

    async def seed(self, store: Store, people: Sequence[str]) -> None:
        with self.phases.phase("seeding people", len(people)) as advance:
            for at in range(0, len(people), 5000):
                batch = [Profile(pid, timezone=TIMEZONE) for pid in people[at : at + 5000]]
                await store.upsert_profiles(batch)
                advance(len(batch))

    def capped(self, people: Sequence[str]) -> frozenset[str]:
        return frozenset(people[: int(len(people) * self.args.capped)])

    # -- 1. enrolment ---------------------------------------------------------------------------

    async def enrol(
        self,
        client: Client,
        enroller: Enroller,
        version: JourneyVersion,
        people: Sequence[str],
        raw: Sequence[str],
        raw_version: JourneyVersion,
        advance: Callable[[int], None],
    ) -> None:
        """Alternating rounds: the enroller's share of ``people`` and the raw starts' of ``raw``."""
        rounds = max(1, round(self.args.rounds * len(people) / max(1, self.args.people)))
        raw_journey = enroller.journey(raw_version)
        result = self.result
        for round_ in range(rounds):
            mine = people[round_ * len(people) // rounds : (round_ + 1) * len(people) // rounds]
            theirs = raw[round_ * len(raw) // rounds : (round_ + 1) * len(raw) // rounds]
            order = ("enroll", "raw") if (round_ + len(raw)) % 2 == 0 else ("raw", "enroll")
            for side in order:
                # Each side starts with the workers idle, so neither pays for the other's runs
                # still on their way to their timers.
                await self.settle(client)
                began = time.perf_counter()
                if side == "enroll":
                    for at in range(0, len(mine), CALL):
                        part = mine[at : at + CALL]
                        report = await enroller.enroll(version, part, datetime.now(UTC))
                        if report["started"] != len(part):
                            raise RuntimeError(f"enrolment refused people: {report.counts}")
                        advance(len(part))
                    result.enrol_seconds += time.perf_counter() - began
                    self.enrolled += len(mine)
                elif theirs:
                    await raw_starts(
                        client, raw_journey, self.queue, list(theirs), self.args.concurrency
                    )
                    advance(len(theirs))
                    self.raw_seconds += time.perf_counter() - began
                    self.raw_started += len(theirs)
        if result.enrol_seconds:
            result.enrolled_per_s = self.enrolled / result.enrol_seconds
        if self.raw_started:
            result.raw_per_s = self.raw_started / self.raw_seconds

    async def settle(self, client: Client, within: float = 300) -> None:
        """Until every run started so far waits at its timer (or ``within`` seconds passed)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await self.count(client, WAITING) >= self.enrolled + self.raw_started:
                return
            await self.pause(0.5)

    async def count(self, client: Client, query: str) -> int:
        began = time.monotonic()
        found = (await client.count_workflows(query)).count
        self.count_cost = time.monotonic() - began
        return found

    async def pause(self, seconds: float) -> None:
        """Sleep between two counts: ``seconds``, or longer when a count is dear. A count of the
        visibility store is a scan on SQLite (0.4-0.6 s of the server's CPU with 84,000 runs), so
        polling it every second would take the CPU the runs being counted need."""
        await asyncio.sleep(max(seconds, 4 * self.count_cost))

    async def all_waiting(self, client: Client, total: int, minute: datetime) -> bool:
        """Wait until every run is at its timer; False when the wave minute came first."""
        return await self.all_started(client, WAITING, total, minute, "runs waiting")

    async def all_started(
        self,
        client: Client,
        query: str,
        total: int,
        minute: datetime,
        what: str = "baseline runs waiting",
    ) -> bool:
        with self.phases.phase(what, total) as advance:
            seen = 0
            while seen < total:
                if datetime.now(UTC) >= minute:
                    self.say(f"the wave minute {minute:%H:%M} came before every run was waiting")
                    return False
                now = await self.count(client, query)
                advance(now - seen)
                seen = now
                if seen < total:
                    await self.pause(1)
        return True

    # -- 2. waiting -----------------------------------------------------------------------------

    def footprint(self) -> dict[str, int]:
        return {
            **self.processes.memory(),
            "Temporal database": size_of([self.home / "temporal.db"]),
            "store database": size_of([self.home / "journey.db"]),
        }

    # -- 3. and 4. the waves --------------------------------------------------------------------

    async def precap(self, people: frozenset[str]) -> None:
        """Each of ``people`` got another journey's message earlier today (counted by the caps)."""
        now = datetime.now(UTC)
        for pid in people:
            decision = await self.caps.reserve(
                CapRequest(
                    send_key=f"earlier:{pid}",
                    profile_id=pid,
                    journey_id="earlier",
                    channel="webhook",
                    priority=50,
                    at=now,
                    timezone=TIMEZONE,
                )
            )
            assert decision.allowed, decision

    async def start_baseline(
        self, client: Client, store: Store, version: JourneyVersion, people: Sequence[str]
    ) -> None:
        """A ledger row each (the same claim the enroller makes), then the start."""
        definition = Journey.model_validate(version.definition)
        limit = asyncio.Semaphore(self.args.concurrency)

        async def start(pid: str, enrollment: str) -> None:
            async with limit:
                await client.start_workflow(
                    "HandWrittenWave",
                    JourneyInput(
                        journey=definition,
                        version=version.version,
                        profile_id=pid,
                        enrollment_id=enrollment,
                        timezone=TIMEZONE,
                    ),
                    id=workflow_id(BASELINE, pid),
                    task_queue=self.queue,
                )

        with self.phases.phase("starting the baseline", len(people)) as advance:
            for at in range(0, len(people), CALL):
                part = people[at : at + CALL]
                claims = await store.claim_enrollments(
                    BASELINE, version.version, part, datetime.now(UTC), lambda last: True
                )
                rows = [(pid, claims[pid].created) for pid in part]
                await asyncio.gather(*(start(pid, row.id) for pid, row in rows if row))
                advance(len(part))

    async def wave(
        self,
        client: Client,
        store: Store,
        wave: Wave,
        minute: datetime,
        runs: str,
        version: int,
    ) -> None:
        done = f"{runs} AND ExecutionStatus = 'Completed'"
        already = await self.count(client, done)
        with self.phases.phase(f"{wave.name}: to {minute:%H:%M}", 1) as advance:
            # The metrics and the log from just before the wave: only the wave is counted.
            await asyncio.sleep(max(0.0, (minute - datetime.now(UTC)).total_seconds() - 2))
            before = histograms(await scrape(self.metrics_url))
            log_start = self.log.stat().st_size
            await asyncio.sleep(max(0.0, (minute - datetime.now(UTC)).total_seconds()))
            advance(1)
        with self.phases.phase(f"{wave.name} wave draining", wave.runs) as advance:
            finished, moved = 0, time.monotonic()
            while finished < wave.runs:
                await self.pause(1)
                now = await self.count(client, done) - already
                advance(now - finished)
                if now > finished:
                    finished, moved = now, time.monotonic()
                elif time.monotonic() - moved > STALLED:
                    # Runs that missed the minute wait for tomorrow's: report what drained.
                    self.say(f"{wave.runs - finished:,} {wave.name} runs did not wake; going on")
                    break
        after = histograms(await scrape(self.metrics_url))
        for metric, slot in (
            (WORKFLOW_TASK_EXECUTION, "execution"),
            (WORKFLOW_TASK_SCHEDULE_TO_START, "schedule_to_start"),
        ):
            found_after, found_before = find(after, metric), find(before, metric)
            if found_after:
                name, buckets = found_after
                setattr(wave, slot, (name, since(found_before[1] if found_before else [], buckets)))
        with self.log.open("rb") as log:
            log.seek(log_start)
            wave.slow_warnings = log.read().decode(errors="replace").count(SLOW_WORKFLOW_TASK)
        ledger = BASELINE if wave.name == BASELINE else JOURNEY
        async with store.engine.connect() as conn:
            last = (
                await conn.execute(
                    select(func.max(enrollments.c.ended_at)).where(
                        enrollments.c.journey_id == ledger,
                        enrollments.c.journey_version == version,
                    )
                )
            ).scalar_one()
            statuses = await conn.execute(
                select(deliveries.c.status, func.count())
                .where(
                    deliveries.c.journey_id == JOURNEY,
                    deliveries.c.journey_version == version,
                )
                .group_by(deliveries.c.status)
            )
            wave.statuses = {status: count for status, count in statuses}
            people = await conn.execute(
                select(enrollments.c.id, enrollments.c.profile_id).where(
                    enrollments.c.journey_id == ledger,
                    enrollments.c.journey_version == version,
                )
            )
            owner = {enrollment: person for enrollment, person in people}
        wave.drain = (last - minute).total_seconds()
        await self.over_cap(wave, owner)
        await self.timeouts(client, runs, wave, minute)

    async def over_cap(self, wave: Wave, owner: dict[str, str]) -> None:
        """Messages the receiver got beyond each person's allowance: none for those capped
        before the wave, one for the others (a retry repeats its send key: one message)."""
        async with httpx.AsyncClient() as http:
            keys = set((await http.get(self.receiver_url)).content.split(b"\n"))
        got = Counter(
            owner[key.decode().split(":")[0]]
            for key in keys
            if key and key.decode().split(":")[0] in owner
        )
        wave.sent = sum(got.values())
        wave.over_cap = sum(max(0, n - (pid not in wave.capped)) for pid, n in got.items())

    async def timeouts(self, client: Client, runs: str, wave: Wave, minute: datetime) -> None:
        """Workflow-task timeouts in the histories of the wave's runs, from ``minute`` on."""
        ids = [
            w.id async for w in client.list_workflows(f"{runs} AND ExecutionStatus = 'Completed'")
        ]
        limit = asyncio.Semaphore(20)
        kinds: Counter[int] = Counter()
        with self.phases.phase(f"{wave.name}: reading histories", len(ids)) as advance:

            async def read(wid: str) -> None:
                async with limit:
                    async for event in client.get_workflow_handle(wid).fetch_history_events():
                        if (
                            event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
                            and event.event_time.ToDatetime(UTC) >= minute
                        ):
                            attributes = event.workflow_task_timed_out_event_attributes
                            kinds[attributes.timeout_type] += 1
                advance(1)

            await asyncio.gather(*(read(wid) for wid in ids))
        wave.timeouts = kinds[TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE]
        wave.sticky_timeouts = kinds[TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START]


# -- the summary --------------------------------------------------------------------------------


def summary(result: Result, took: float) -> list[str]:
    fp = result.footprints
    per = fp.runs / 10_000
    lines = [
        f"{result.people:,} people enrolled, {result.raw:,} raw starts; {fp.runs:,} runs "
        f"waiting; embedded stack (SQLite persistence); took {took / 60:.1f} min",
        "",
        f"{'enrolment':<36}{'per second':>14}",
        f"{'Enroller.enroll':<36}{result.enrolled_per_s:>14.1f}",
        f"{'raw start_workflow':<36}{result.raw_per_s:>14.1f}",
        f"{'ratio':<36}{result.enrolled_per_s / result.raw_per_s:>13.2f}x   aim >= 0.9x",
        "",
        f"{'with every run waiting':<36}{'empty':>10}{'waiting':>10}{'per 10k runs':>14}",
    ]
    for name, empty in fp.empty.items():
        waiting = fp.waiting.get(name, 0)
        lines.append(
            f"{name:<36}{empty / MiB:>8.0f}MB{waiting / MiB:>8.0f}MB"
            f"{(waiting - empty) / MiB / per if per else math.nan:>12.1f}MB"
        )
    if len(result.waves) == 2:
        ours, base = result.waves
        lines += ["", f"{'the wave':<36}{'journey':>12}{'hand-written':>14}{'ratio':>8}"]
        for label, a, b in (
            ("runs woken in one minute", ours.runs, base.runs),
            ("capped before the wave", len(ours.capped), len(base.capped)),
            ("messages the receiver got", ours.sent, base.sent),
            ("time to drain (s)", ours.drain, base.drain),
        ):
            lines.append(f"{label:<36}{a:>12,.1f}{b:>14,.1f}")
        lines.append(
            f"{'sends/s':<36}{ours.rate:>12.1f}{base.rate:>14.1f}"
            f"{ours.rate / base.rate:>7.2f}x   aim >= 0.9x"
        )
        for label, key in (
            ("workflow-task timeouts (aim 0)", "timeouts"),
            ("sticky schedule-to-start timeouts", "sticky_timeouts"),
            ("sends over a cap (aim 0)", "over_cap"),
            (f"{SLOW_WORKFLOW_TASK} warnings (aim 0)", "slow_warnings"),
        ):
            lines.append(f"{label:<36}{getattr(ours, key):>12}{getattr(base, key):>14}")
        for label, key in (
            ("wf task execution p50/p99", "execution"),
            ("wf task schedule-to-start p50/p99", "schedule_to_start"),
        ):
            ours_q, base_q = _quantiles(getattr(ours, key)), _quantiles(getattr(base, key))
            lines.append(f"{label:<36}{ours_q:>12}{base_q:>14}")
        lines.append(
            "delivery log: "
            + "; ".join(f"{w.name} {dict(sorted(w.statuses.items()))}" for w in result.waves)
        )
        for w in result.waves:
            if w.late:
                lines.append(f"note: the {w.name} wave began before every run was waiting")
    return lines


def _quantiles(found: tuple[str, Buckets] | None) -> str:
    if found is None or not found[1] or not found[1][-1][1]:
        return "-"
    name, buckets = found
    return f"{bound(buckets, 0.5, unit(name))} / {bound(buckets, 0.99, unit(name))}"


# -- entry points -------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--people", type=int, default=100_000, help="people enrolled")
    parser.add_argument("--wave", type=int, help="of them, woken together (default: a fifth)")
    parser.add_argument("--raw", type=int, help="raw start_workflow baseline (default: a fifth)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating enrolment rounds")
    parser.add_argument("--concurrency", type=int, default=50, help="starts in flight")
    parser.add_argument("--capped", type=float, default=0.1, help="share capped before a wave")
    parser.add_argument("--home", type=Path, help="where the stack writes (default: a temp dir)")
    args = parser.parse_args(argv)
    args.wave = args.people // 5 if args.wave is None else args.wave
    args.raw = args.people // 5 if args.raw is None else args.raw
    if args.people < 10 or not 1 <= args.wave < args.people:
        parser.error("--people must be at least 10, --wave at least 1 and less than --people")
    return args


def main() -> None:
    if sys.argv[1:2] == ["worker"]:
        serve_worker(sys.argv[2:])
        return
    args = parse()
    args.home = args.home or Path(tempfile.mkdtemp(prefix="journey-bench-scale-"))
    args.home.mkdir(parents=True, exist_ok=True)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    # The raw starts and the baseline's wave are waiting runs too.
    per_person = (args.people + args.raw + args.wave) / args.people
    problem = too_large(args.people, per_person, FOOTPRINT, Machine.read(args.home))
    if problem:
        sys.exit(f"not started: {problem}: ask for fewer with --people")
    began = time.monotonic()
    with live_progress() as (say, phases):
        try:
            result = asyncio.run(guarded(Bench(args, say, phases).run(), args.home))
        except OutOfRoom as exc:
            phases.finish()
            sys.exit(str(exc))
        phases.finish()
    for line in summary(result, time.monotonic() - began):
        print(line)
    print(f"(worker logs: {args.home / 'workers.log'})")


def serve_worker(argv: list[str]) -> None:
    """``python -m bench.scale worker --only ROLE``: `journey worker --only ROLE` with the
    hand-written baseline registered next to the journey workflow."""
    from engine.logs import configure_logging
    from engine.runner import run_worker
    from engine.settings import Settings

    role: Any = argv[argv.index("--only") + 1] if "--only" in argv else "all"
    settings = Settings()
    configure_logging(settings, default_level="info")
    asyncio.run(run_worker(settings, role, extra_workflows=[HandWrittenWave]))


if __name__ == "__main__":
    main()
