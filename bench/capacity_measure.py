"""Measuring what one journey run costs, per step kind, on the embedded stack.

Small journeys run for N fresh people each, through a real ``journey worker`` process, the
Temporal dev server (SQLite persistence), Redis, and the store (SQLite, and PostgreSQL when a URL
is given): ``run`` (``exit`` alone: what every run costs), ``base`` (a 1 h wait, then ``exit``)
and one per step kind (``wait``, ``wait_for``, ``branch``, ``split``, ``send``, ``update``: the
step, then the wait and ``exit``). Each journey is measured as the difference of counters read
before and after its runs, divided by N; ``bench.capacity_plan`` takes a step's cost as its
journey's minus ``base``'s.

What is read, and from where:

- Temporal: history events, state transitions and history bytes of every run
  (``DescribeWorkflowExecution``: ``history_length``, ``state_transition_count``,
  ``history_size_bytes``); billable actions from the server's own ``action`` counter (the
  metric Temporal's migration guide uses to estimate Cloud actions) and, as a cross-check,
  counted from sampled histories by Temporal Cloud's published rules; the server's persistence
  requests (``persistence_requests``).
- Redis: commands (``total_commands_processed`` and per command from ``INFO commandstats``),
  round trips (``total_writes_processed``: the server's reply writes, one per request or
  pipeline it answers), and at the end the memory of the cap keys per person sent to
  (``MEMORY USAGE``).
- Store: rows and bytes per table (SQLite: ``count(*)`` and ``dbstat``; PostgreSQL:
  ``pg_total_relation_size``), and on PostgreSQL the row writes (``pg_stat_user_tables`` of the
  measurement's own schema), read once every backend has flushed its statistics. (Commits are
  not counted: ``pg_stat_database`` is shared with whatever else uses the database.)
- CPU: the worker process's user + system time (``/proc``), and this process's time spent
  entering people (in production the segment-entry activity does that in the worker).

Waits are scaled (``time_scale``) so a 1 h wait takes a second; the cost of a wait does not
depend on its length. The send journeys use ``journeys/policy.yaml`` without its quiet hours
(so the time of day of a measurement changes nothing) and the console connector.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.ingest import Database
from engine.domain import JourneyVersion, Profile
from engine.servers import free_port
from engine.services.deploy import deploy_file
from engine.services.enroll import Enroller
from engine.stack import EmbeddedStack, StackPorts
from engine.temporal import workflow_id
from engine.worker_process import worker_process

REPO = Path(__file__).resolve().parent.parent
TIME_SCALE = 3600.0
"""A 1 h wait takes one second."""
HISTORY_SAMPLE = 20
"""Runs per kind whose whole history is read to count actions by Temporal Cloud's rules."""

_EXIT = {"id": "done", "exit": {}}
_REST = {"id": "rest", "wait": "1h"}
KINDS: dict[str, list[dict[str, Any]]] = {
    "run": [],
    "base": [],
    "wait": [{"id": "pause", "wait": "1h"}],
    "wait_for": [
        {"id": "wait_pay", "wait_for": {"event": "order_paid", "timeout": "1h"}},
    ],
    "branch": [
        {
            "id": "value",
            "branch": [
                {"when": {"attribute": "cart_value", "gte": 200}, "goto": "rest"},
                {"else": "rest"},
            ],
        }
    ],
    "split": [
        {
            "id": "test",
            "split": [
                {"variant": "A", "weight": 50, "goto": "rest"},
                {"variant": "B", "weight": 50, "goto": "rest"},
            ],
        }
    ],
    "send": [{"id": "copy", "send": {"channel": "sms", "template": "cart_b"}}],
    "update": [
        {"id": "mark", "update": {"attributes": {"cart_nudged": True}, "add_tags": ["nudged"]}}
    ],
}
"""Each kind's step. ``run`` is a journey of ``exit`` alone: what every run costs (start,
ledger row, end). The others are their step, then a 1 h wait (``rest``), then ``exit``; ``base``
has no step. A step's cost is its journey's minus ``base``'s: measured in a workflow task of its
own, as after a wait in a real journey, not sharing one with the run's final ledger write
(Temporal bills the local activities of one workflow task as one action)."""


def steps_of(kind: str) -> list[dict[str, Any]]:
    if kind == "run":
        return [_EXIT]
    return [*KINDS[kind], _REST, _EXIT]


def journey_document(kind: str) -> dict[str, Any]:
    return {
        "id": f"cost-{kind.replace('_', '-')}",
        "name": f"cost of {kind}",
        "entry": {"api": True},
        "reentry": {"policy": "always"},
        "steps": steps_of(kind),
    }


def people(kind: str, count: int, prefix: str) -> list[Profile]:
    """Fresh people for one kind: ``prefix`` keeps each store's pass to people of its own (the
    passes share Redis, where the caps would hold back a second send to the same person)."""
    tag = prefix + re.sub("[^a-z]", "", kind)
    return [
        Profile(
            id=f"{tag}{n:05d}",
            attributes={
                "first_name": "测",
                "cart_value": 99,
                "phone": "+8613800000000",
                "email": f"{tag}{n:05d}@example.com",
            },
        )
        for n in range(count)
    ]


# -- counters -------------------------------------------------------------------------------------


async def settled_temporal_counters(url: str, *, every: float = 1.5) -> dict[str, float]:
    """The counters once the server has reported every action so far: its metrics reach the
    page in periodic flushes, so read until two reads ``every`` seconds apart agree on the
    actions (the persistence requests never settle: an idle server renews leases)."""
    last = temporal_counters(url)
    while True:
        await asyncio.sleep(every)
        now = temporal_counters(url)
        if now.get("action") == last.get("action"):
            return now
        last = now


def temporal_counters(url: str) -> dict[str, float]:
    """The server's billable actions (by type) and persistence requests (by operation)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        page = response.read().decode()
    counters: Counter[str] = Counter()
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            # By family: the parser names a counter's samples ``<name>_total``.
            if family.name == "action" and sample.labels.get("namespace") == "default":
                counters["action"] += sample.value
                counters[f"action:{sample.labels.get('action_type', '?')}"] += sample.value
            elif family.name == "persistence_requests":
                counters["persistence"] += sample.value
                counters[f"persistence:{sample.labels.get('operation', '?')}"] += sample.value
    return dict(counters)


async def redis_counters(redis: aioredis.Redis) -> dict[str, float]:
    """One ``INFO all`` (itself one command and one reply, subtracted by the caller)."""
    info = await redis.info("all")
    counters = {
        "commands": float(info["total_commands_processed"]),
        "round_trips": float(info["total_writes_processed"]),
    }
    for key, value in info.items():
        if key.startswith("cmdstat_") and isinstance(value, dict):
            counters[f"command:{key[len('cmdstat_') :]}"] = float(value["calls"])
    return counters


async def redis_bytes_per_person(redis: aioredis.Redis) -> float:
    """Memory of every cap key (``MEMORY USAGE``, value and key overhead) per person holding
    some: what each person sent to costs Redis for as long as the windows keep them."""
    total, persons = 0, set()
    async for key in redis.scan_iter(match="jc:{p:*", count=1000):
        total += await redis.memory_usage(key) or 0
        persons.add(key.split(b"}")[0])
    return total / max(len(persons), 1)


async def store_counters(db: Database) -> dict[str, float]:
    """Rows and bytes per table; on PostgreSQL also row writes."""
    counters: dict[str, float] = {}
    store = db.open()
    try:
        async with store.engine.connect() as conn:
            if db.schema is None:
                tables = (
                    await conn.execute(
                        text(
                            "SELECT name FROM sqlite_master WHERE type = 'table' "
                            "AND name NOT LIKE 'sqlite_%'"
                        )
                    )
                ).scalars()
                owners = dict(
                    (await conn.execute(text("SELECT name, tbl_name FROM sqlite_master"))).all()
                )
                for table in list(tables):
                    rows = (await conn.execute(text(f'SELECT count(*) FROM "{table}"'))).scalar()
                    counters[f"rows:{table}"] = float(rows or 0)
                for name, size in await conn.execute(
                    text("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
                ):
                    owner = owners.get(name, name)
                    if not owner.startswith("sqlite_"):
                        key = f"bytes:{owner}"
                        counters[key] = counters.get(key, 0.0) + float(size)
            else:
                result = await conn.execute(
                    text(
                        "SELECT relname, n_live_tup, n_tup_ins + n_tup_upd + n_tup_del, "
                        "pg_total_relation_size(relid) FROM pg_stat_user_tables "
                        "WHERE schemaname = :schema"
                    ),
                    {"schema": db.schema},
                )
                for table, _live, writes, size in result:
                    counters[f"writes:{table}"] = float(writes)
                    counters[f"bytes:{table}"] = float(size)
                    rows = await conn.execute(text(f'SELECT count(*) FROM "{db.schema}"."{table}"'))
                    counters[f"rows:{table}"] = float(rows.scalar() or 0)
    finally:
        await store.aclose()
    return counters


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pid(marker: str) -> int:
    """The pid of this process's child whose command line contains ``marker``."""
    me = os.getpid()
    for task in Path(f"/proc/{me}/task").iterdir():
        for pid in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if marker in cmdline:
                return int(pid)
    raise RuntimeError(f"no child process running {marker!r}")


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after.keys() | before.keys()}


# -- histories ------------------------------------------------------------------------------------

_ONE_ACTION = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    EventType.EVENT_TYPE_TIMER_STARTED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
}


async def actions_from_history(client: Client, wid: str) -> int:
    """Billable actions of one run by Temporal Cloud's published rules: a start, each timer,
    activity schedule (plus each retry), signal and search-attribute upsert is one; all the
    local-activity markers of one workflow task together are one."""
    actions = 0
    marker_tasks: set[int] = set()
    async for event in client.get_workflow_handle(wid).fetch_history_events():
        if event.event_type in _ONE_ACTION:
            actions += 1
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            actions += max(event.activity_task_started_event_attributes.attempt - 1, 0)
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker_tasks.add(
                event.marker_recorded_event_attributes.workflow_task_completed_event_id
            )
    return actions + len(marker_tasks)


# -- one kind -------------------------------------------------------------------------------------


@dataclass
class Setup:
    stack: EmbeddedStack
    client: Client
    redis: aioredis.Redis
    home: Path
    journeys: Path
    metrics_url: str


@dataclass(frozen=True)
class Deployed:
    version: JourneyVersion
    people: list[Profile]


PG_STATS_FLUSH = 11.0
"""Seconds an idle PostgreSQL backend may keep its statistics before flushing them (10 s in
PostgreSQL 15), so the row writes of the worker's pooled connections are all counted."""


async def idle_cpu_rate(worker: int, seconds: float = 10.0) -> float:
    """CPU seconds a second the worker spends with nothing to do (its long polls): subtracted
    from each kind's CPU for the time its runs took, which load makes longer or shorter."""
    before = cpu_seconds(worker)
    await asyncio.sleep(seconds)
    return (cpu_seconds(worker) - before) / seconds


async def run_kind(
    setup: Setup, db: Database, queue: str, deployed: Deployed, worker: int, idle: float
) -> dict[str, Any]:
    """The per-run counters of one kind's journey (absolute, not yet minus the base)."""
    runs = len(deployed.people)
    before_redis = await redis_counters(setup.redis)
    before_temporal = await settled_temporal_counters(setup.metrics_url)
    before_store = await store_counters(db)
    before_cpu = cpu_seconds(worker)
    began = time.perf_counter()
    store = db.open()
    try:
        enroller = Enroller(store, setup.client, queue, time_scale=TIME_SCALE)
        entering = time.process_time()
        report = await enroller.enroll(
            deployed.version, [p.id for p in deployed.people], datetime.now(UTC)
        )
        entry_cpu = time.process_time() - entering
        journey = enroller.journey(deployed.version)
    finally:
        await store.aclose()  # its PostgreSQL backend exits and flushes its statistics
    if report["started"] != runs:
        raise RuntimeError(f"{journey.id}: {report.counts}")
    ids = [workflow_id(journey.id, p.id) for p in deployed.people]
    await asyncio.gather(*(setup.client.get_workflow_handle(i).result() for i in ids))
    seconds = time.perf_counter() - began
    worker_cpu = cpu_seconds(worker) - before_cpu - idle * seconds
    after_redis = await redis_counters(setup.redis)
    after_temporal = await settled_temporal_counters(setup.metrics_url)
    if db.schema is not None:
        await asyncio.sleep(PG_STATS_FLUSH)
    after_store = await store_counters(db)
    described = await asyncio.gather(*(setup.client.get_workflow_handle(i).describe() for i in ids))
    infos = [d.raw_description.workflow_execution_info for d in described]
    sampled = [await actions_from_history(setup.client, i) for i in ids[:HISTORY_SAMPLE]]
    redis_used = delta(after_redis, before_redis)
    for own in ("commands", "round_trips", "command:info"):
        redis_used[own] -= 1  # the INFO that read the counters before
    per_run: dict[str, Any] = {
        "runs": runs,
        "seconds": round(seconds, 2),
        # The median run: a run whose workflow task timed out on the loaded machine (and was
        # retried) has a few events more; the mean says how many there were here.
        "history_events": statistics.median(i.history_length for i in infos),
        "history_events_mean": statistics.mean(i.history_length for i in infos),
        "state_transitions": statistics.median(i.state_transition_count for i in infos),
        "state_transitions_mean": statistics.mean(i.state_transition_count for i in infos),
        "history_bytes": statistics.median(i.history_size_bytes for i in infos),
        "actions_from_history": statistics.mean(sampled),
        "worker_cpu_ms": 1000 * worker_cpu / runs,
        "entry_cpu_ms": 1000 * entry_cpu / runs,
    }
    for prefix, used in (
        ("temporal", delta(after_temporal, before_temporal)),
        ("redis", redis_used),
        ("store", delta(after_store, before_store)),
    ):
        for name, value in sorted(used.items()):
            if value:
                per_run[f"{prefix}:{name}"] = value / runs
    return per_run


def _worker_pid() -> int:
    return child_pid("engine.cli.main worker")


# -- the whole measurement ------------------------------------------------------------------------


def measurement_journeys(home: Path) -> Path:
    """A journeys folder for the measurement: the templates and tiers of ``journeys/``, the
    policy without quiet hours (a measurement must not depend on the time of day)."""
    folder = home / "journeys"
    shutil.copytree(REPO / "journeys" / "templates", folder / "templates")
    shutil.copy(REPO / "journeys" / "tiers.yaml", folder / "tiers.yaml")
    policy = (REPO / "journeys" / "policy.yaml").read_text().splitlines(keepends=True)
    kept = [line for line in policy if not line.startswith("quiet_hours:")]
    (folder / "policy.yaml").write_text("".join(kept))
    return folder


@contextlib.asynccontextmanager
async def embedded(home: Path) -> AsyncIterator[Setup]:
    ports = StackPorts(free_port(), free_port(), free_port(), metrics=free_port())
    stack = EmbeddedStack(home, ports)
    client = await stack.start()
    redis = aioredis.Redis.from_url(stack.redis_url)
    try:
        yield Setup(
            stack,
            client,
            redis,
            home,
            measurement_journeys(home),
            f"http://127.0.0.1:{ports.metrics}/metrics",
        )
    finally:
        await redis.aclose()
        await stack.stop()


async def measure_database(
    setup: Setup, db: Database, runs: int, kinds: Iterable[str], say: Any
) -> dict[str, Any]:
    """Per-run counters of each of ``kinds`` on one store, through one worker process (warmed
    up first, so no kind pays for the worker's start)."""
    kinds = list(kinds)
    deployed: dict[str, Deployed] = {}
    store = db.open()
    try:
        await store.migrate()
    finally:
        await store.aclose()
    empty = await store_counters(db)
    store = db.open()
    try:
        for kind in ["warm-up", *kinds]:
            # The warm-up sends, so no kind pays for the worker's first connections and scripts.
            spec = "send" if kind == "warm-up" else kind
            path = setup.journeys / f"cost_{spec}.yaml"
            # JSON is YAML: the loader reads it as any journey file.
            path.write_text(json.dumps(journey_document(spec), ensure_ascii=False, indent=1))
            version, _ = await deploy_file(store, path, datetime.now(UTC))
            group = people(kind, 20 if kind == "warm-up" else runs, db.name[:2])
            await store.upsert_profiles(group)
            deployed[kind] = Deployed(version, group)
    finally:
        await store.aclose()
    loaded = delta(await store_counters(db), empty)
    everyone = sum(len(d.people) for d in deployed.values())
    profile_bytes = sum(v for k, v in loaded.items() if k.startswith("bytes:")) / everyone
    queue = f"cost-{uuid.uuid4().hex[:6]}"
    settings = {
        "JOURNEY_HOME": str(setup.home),
        "JOURNEY_TEMPORAL_ADDRESS": setup.stack.temporal_address,
        "JOURNEY_TASK_QUEUE": queue,
        "JOURNEY_DATABASE_URL": db.worker_url(),
        "JOURNEY_REDIS_URL": setup.stack.redis_url,
        "JOURNEY_JOURNEYS_DIR": str(setup.journeys),
        "JOURNEY_POLICY_PATH": str(setup.journeys / "policy.yaml"),
        "JOURNEY_CONSOLE_PATH": str(setup.home / "outbox.jsonl"),
    }
    measured: dict[str, Any] = {}
    # The worker says it polls in an info line: it must log at info, whatever this process does.
    settings["JOURNEY_LOG_LEVEL"] = "info"
    async with worker_process(settings, setup.home / "worker.log", within=180):
        worker = _worker_pid()
        idle = 0.0
        for kind in ["warm-up", *kinds]:
            result = await run_kind(setup, db, queue, deployed[kind], worker, idle)
            if kind == "warm-up":
                idle = await idle_cpu_rate(worker)
            say(f"  {db.name} {kind}: {result['runs']} runs, {result['seconds']} s")
            if kind != "warm-up":
                measured[kind] = result
    return {
        "runs": measured,
        "profile_bytes": round(profile_bytes, 1),
        "worker_idle_cpu": round(idle, 4),
        "redis_bytes_per_person": round(await redis_bytes_per_person(setup.redis), 1),
    }
