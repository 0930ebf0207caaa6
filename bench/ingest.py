"""Ingest and enrollment throughput against raw baselines measured in the same run.

1. Events per second through ``POST /v1/events`` (batches of 500, a real uvicorn server in its own
   process, over loopback, two requests in flight as a client with a small connection pool
   would send them) against a raw SQLAlchemy bulk insert of the same rows (one ``INSERT``
   executemany per batch, one transaction each), on SQLite and on PostgreSQL. Both sides write
   to the same freshly migrated database, in alternating rounds. The same rows also go as
   Segment ``track`` messages through ``POST /v1/batch`` (Basic auth with the write key, as the
   Segment SDKs send them), measured in the same rounds against the same raw insert. CPU per
   batch is printed too (the server's process against the bench's own for the raw insert): on
   a busy machine it moves far less than throughput does.
2. People enrolled per second: ``Enroller.enroll`` of a 100,000-person list into a small API-entry
   journey, against raw ``client.start_workflow`` calls with the same arguments at the same
   concurrency, on an in-memory Temporal dev server (no worker polls the queue: both sides
   measure starting runs, not running them), with a SQLite store. Rounds alternate sides.

    python -m bench.ingest [--events 20000] [--people 100000 | 0 to skip] [--postgres URL]

PostgreSQL is measured when ``--postgres`` or ``JOURNEY_TEST_POSTGRES_URL`` gives a URL (a
scratch schema is made and dropped). The dev server starts roughly 100-200 runs per second on a
busy 2-core machine, so the default 2 x 100,000 starts take 15-35 minutes; ``--people 20000``
gives the same ratios in about 5.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.testing import WorkflowEnvironment

import engine.servers
import engine.temporal
from bench.child import child_server, cpu_seconds
from engine.domain import Profile
from engine.dsl.models import Journey
from engine.services.enroll import Enroller
from engine.store import Store
from engine.store.tables import events as events_table
from engine.temporal import run_search_attributes, workflow_id
from engine.workflow.messages import JourneyInput

API_KEY = "bench-key-0123456789"
BEARER = f"Bearer {API_KEY}"
BASIC = "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()
BATCH = 500
JOURNEY = {
    "id": "bench-enroll",
    "name": "bench enroll",
    "entry": {"api": True},
    "steps": [{"id": "pause", "wait": "30d"}, {"id": "done", "exit": {}}],
}


@dataclass(frozen=True)
class Database:
    name: str
    url: str
    schema: str | None = None

    def open(self) -> Store:
        return Store.from_url(self.url, schema=self.schema)

    def worker_url(self) -> str:
        """The URL a worker process opens: the schema on the connection's search path."""
        if self.schema is None:
            return self.url
        return f"{self.url}?options=-csearch_path%3D{self.schema}"


# -- part 1: events -----------------------------------------------------------------------------


def event_rows(count: int, tag: str) -> list[dict[str, Any]]:
    base = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        {
            "event_id": f"{tag}-{n:08d}",
            "profile_id": f"p{n % 5000:05d}",
            "name": "product_viewed",
            "occurred_at": base + timedelta(seconds=n),
            "properties": {"sku": f"SKU-{n % 977}", "price": n % 300 + 0.5, "channel": "app"},
        }
        for n in range(count)
    ]


def api_bodies(rows: list[dict[str, Any]]) -> list[bytes]:
    """Pre-encoded request bodies, so the client spends no time on JSON while measured."""
    bodies = []
    for start in range(0, len(rows), BATCH):
        items = [
            {**row, "occurred_at": row["occurred_at"].isoformat()}
            for row in rows[start : start + BATCH]
        ]
        bodies.append(json.dumps({"events": items}, ensure_ascii=False).encode())
    return bodies


def segment_bodies(rows: list[dict[str, Any]]) -> list[bytes]:
    """The same rows as Segment ``track`` messages, batched as the SDKs batch them."""
    bodies = []
    sent_at = datetime.now(UTC).isoformat()
    for start in range(0, len(rows), BATCH):
        items = [
            {
                "type": "track",
                "messageId": row["event_id"],
                "userId": row["profile_id"],
                "event": row["name"],
                "timestamp": row["occurred_at"].isoformat(),
                "properties": row["properties"],
                "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
            }
            for row in rows[start : start + BATCH]
        ]
        bodies.append(json.dumps({"batch": items, "sentAt": sent_at}).encode())
    return bodies


class Connection:
    """A minimal keep-alive HTTP/1.1 client over one socket: the measured side is the server,
    so the client must cost next to nothing (httpx would add milliseconds per request)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, path: str, body: bytes, auth: str = BEARER) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        await self._writer.drain()
        status_line, _, headers = (await self._reader.readuntil(b"\r\n\r\n")).partition(b"\r\n")
        length = 0
        for line in headers.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self._reader.readexactly(length)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


async def through_api(
    port: int, bodies: list[bytes], clients: int, path: str = "/v1/events"
) -> float:
    queue = list(reversed(bodies))
    connections = [await Connection.open(port) for _ in range(clients)]
    auth = BASIC if path == "/v1/batch" else BEARER

    async def sender(connection: Connection) -> None:
        while queue:
            status, answer = await connection.post(path, queue.pop(), auth)
            if status != 200:
                raise RuntimeError(f"the API answered {status}: {answer[:200]!r}")

    try:
        began = time.perf_counter()
        await asyncio.gather(*(sender(c) for c in connections))
        return time.perf_counter() - began
    finally:
        for connection in connections:
            await connection.close()


async def raw_insert(store: Store, rows: list[dict[str, Any]]) -> float:
    now = datetime.now(UTC)
    began = time.perf_counter()
    for start in range(0, len(rows), BATCH):
        batch = [
            {**row, "received_at": now, "delivered_at": now} for row in rows[start : start + BATCH]
        ]
        async with store.engine.begin() as conn:
            await conn.execute(events_table.insert(), batch)
    return time.perf_counter() - began


@contextlib.asynccontextmanager
async def api_server(db: Database, temporal: str) -> AsyncIterator[tuple[int, int]]:
    """The API in a child process (its own CPU, as in production): its port and process id."""
    port = engine.servers.free_port()
    command = [sys.executable, "-m", "bench.ingest", "--serve", db.url, db.schema or "", temporal]
    url = f"http://127.0.0.1:{port}"
    async with child_server(
        [*command, str(port)], lambda c: c.get(url + "/healthz"), "API server"
    ) as pid:
        yield port, pid


async def serve(url: str, schema: str, temporal: str, port: int) -> None:
    from engine.api import create_app, serve_api
    from engine.services.events import EventRouter

    store = Store.from_url(url, schema=schema or None)
    client = await engine.temporal.connect(temporal)
    router = EventRouter(store, client, Enroller(store, client, "bench-unused"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await serve_api(create_app(store, router, [API_KEY]), "127.0.0.1", port, stop)
    finally:
        await store.aclose()


@dataclass(frozen=True)
class EventRates:
    """Events per second on each side, and CPU seconds per batch of ``BATCH`` where measured:
    the API server's process for the two API sides, the bench's own for the raw insert (a
    database server's CPU is in neither)."""

    api: float
    segment: float
    raw: float
    cpu: dict[str, float]


async def bench_events(
    db: Database, temporal: str, count: int, rounds: int, clients: int
) -> EventRates:
    """Events per second through /v1/events, through Segment's /v1/batch, and raw, on ``db``."""
    store = db.open()
    await store.migrate()
    api_time = segment_time = raw_time = 0.0
    cpu: dict[str, float] = {"api": 0.0, "segment": 0.0, "raw": 0.0}
    measured = True
    per_round = count // rounds
    try:
        async with api_server(db, temporal) as (port, pid):
            await through_api(port, api_bodies(event_rows(BATCH, "warm-api")), 1)
            await through_api(port, segment_bodies(event_rows(BATCH, "warm-seg")), 1, "/v1/batch")
            await raw_insert(store, event_rows(BATCH, "warm-raw"))
            for round_ in range(rounds):
                raw_rows = event_rows(per_round, f"raw{round_}")
                bodies = api_bodies(event_rows(per_round, f"api{round_}"))
                segment = segment_bodies(event_rows(per_round, f"seg{round_}"))

                async def raw_side(rows: list[dict[str, Any]] = raw_rows) -> float:
                    return await raw_insert(store, rows)

                async def api_side(bodies: list[bytes] = bodies) -> float:
                    return await through_api(port, bodies, clients)

                async def segment_side(bodies: list[bytes] = segment) -> float:
                    return await through_api(port, bodies, clients, "/v1/batch")

                sides = [raw_side, api_side, segment_side]
                names = {raw_side: "raw", api_side: "api", segment_side: "segment"}
                # Rotate who goes first, so drift hits every side.
                timings = {}
                for side in sides[round_ % 3 :] + sides[: round_ % 3]:
                    server_before, own_before = cpu_seconds(pid), time.process_time()
                    timings[side] = await side()
                    server_after, own_after = cpu_seconds(pid), time.process_time()
                    if server_before is None or server_after is None:
                        measured = False
                    elif side is raw_side:
                        cpu["raw"] += own_after - own_before
                    else:
                        cpu[names[side]] += server_after - server_before
                raw_time += timings[raw_side]
                api_time += timings[api_side]
                segment_time += timings[segment_side]
        async with store.engine.connect() as conn:
            stored = (await conn.execute(text("SELECT count(*) FROM events"))).scalar_one()
        assert stored == 3 * (BATCH + per_round * rounds), f"{stored} events stored"
    finally:
        await store.aclose()
    total = per_round * rounds
    batches = total / BATCH
    per_batch = {side: seconds / batches for side, seconds in cpu.items()} if measured else {}
    return EventRates(total / api_time, total / segment_time, total / raw_time, per_batch)


# -- part 2: enrollment --------------------------------------------------------------------------


async def raw_starts(
    client: Client, journey: Journey, queue: str, ids: list[str], concurrency: int
) -> float:
    """``start_workflow`` with exactly the arguments the Enroller uses."""
    limit = asyncio.Semaphore(concurrency)

    async def start(pid: str) -> None:
        async with limit:
            await client.start_workflow(
                "JourneyWorkflow",
                JourneyInput(
                    journey=journey,
                    version=1,
                    profile_id=pid,
                    enrollment_id=uuid.uuid4().hex,
                    timezone="Asia/Shanghai",
                ),
                id=workflow_id(journey.id, pid),
                task_queue=queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=run_search_attributes(journey.id, 1, pid),
                static_summary=f"{journey.name} v1",
            )

    began = time.perf_counter()
    await asyncio.gather(*(start(pid) for pid in ids))
    return time.perf_counter() - began


async def bench_enroll(
    people: int, rounds: int, concurrency: int, home: Path
) -> tuple[float, float]:
    """(people/s through Enroller.enroll, starts/s raw)."""
    from engine.services.deploy import deploy_journey

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(engine.servers.find_binary("temporal")),
        data_converter=engine.temporal.DATA_CONVERTER,
        search_attributes=list(engine.temporal.SEARCH_ATTRIBUTE_KEYS),
    )
    store = Store.from_url(f"sqlite+aiosqlite:///{home / 'enroll.db'}")
    try:
        await store.migrate()
        queue = f"bench-{uuid.uuid4().hex[:6]}"
        journey = Journey.model_validate(JOURNEY)
        version, _ = await deploy_journey(store, journey, home / "templates", datetime.now(UTC))
        enroller = Enroller(store, env.client, queue, concurrency=concurrency)
        enrolled = [f"e{n:07d}" for n in range(people)]
        raw = [f"r{n:07d}" for n in range(people)]
        for start in range(0, people, 5000):
            await store.upsert_profiles([Profile(pid) for pid in enrolled[start : start + 5000]])
        await raw_starts(env.client, journey, queue, [f"w{n}" for n in range(200)], concurrency)
        per_round = people // rounds
        enroll_time = raw_time = 0.0
        for round_ in range(rounds):
            part = slice(round_ * per_round, (round_ + 1) * per_round)

            async def through_enroller(ids: list[str] = enrolled[part]) -> float:
                began = time.perf_counter()
                report = await enroller.enroll(version, ids, datetime.now(UTC))
                assert report["started"] == len(ids), report.counts
                return time.perf_counter() - began

            async def raw_side(ids: list[str] = raw[part]) -> float:
                return await raw_starts(env.client, journey, queue, ids, concurrency)

            if round_ % 2:
                raw_time += await raw_side()
                enroll_time += await through_enroller()
            else:
                enroll_time += await through_enroller()
                raw_time += await raw_side()
            print(f"  enrollment round {round_ + 1}/{rounds} done", flush=True)
        total = per_round * rounds
        return total / enroll_time, total / raw_time
    finally:
        await store.aclose()
        await env.shutdown()
        await asyncio.sleep(0.05)  # sdk-python#300


# -- main ---------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="journey-bench-ingest-"))
    databases = [Database("SQLite", f"sqlite+aiosqlite:///{home / 'ingest.db'}")]
    pg_url = args.postgres or os.environ.get("JOURNEY_TEST_POSTGRES_URL")
    if pg_url:
        databases.append(Database("PostgreSQL", pg_url, f"bench_{uuid.uuid4().hex[:10]}"))
    print(
        f"events: {args.events:,} per side in batches of {BATCH}, {args.rounds} alternating "
        f"rounds, {args.clients} request(s) in flight",
        flush=True,
    )
    temporal = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(engine.servers.find_binary("temporal")),
        data_converter=engine.temporal.DATA_CONVERTER,
    )
    address = temporal.client.service_client.config.target_host
    results: list[tuple[str, EventRates]] = []
    try:
        for db in databases:
            try:
                rates = await bench_events(db, address, args.events, args.rounds, args.clients)
            finally:
                if db.schema:
                    async with Store.from_url(db.url) as admin, admin.engine.begin() as conn:
                        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{db.schema}" CASCADE'))
            results.append((db.name, rates))
            print(f"  {db.name}: done", flush=True)
    finally:
        await temporal.shutdown()
        await asyncio.sleep(0.05)

    if args.people:
        print(
            f"enrollment: {args.people:,} people per side, concurrency {args.concurrency}, "
            f"{args.enroll_rounds} alternating rounds",
            flush=True,
        )
        began = time.perf_counter()
        enroll, starts = await bench_enroll(args.people, args.enroll_rounds, args.concurrency, home)
        took = time.perf_counter() - began

    print()
    print(f"{'':<34}{'engine':>12}{'raw':>12}{'ratio':>8}   aim")
    for name, r in results:
        label = f"events/s, {name}"
        print(f"{label:<34}{r.api:>12,.0f}{r.raw:>12,.0f}{r.api / r.raw:>7.2f}x   >= 0.5x")
        label = f"events/s, {name}, Segment /v1/batch"
        print(f"{label:<34}{r.segment:>12,.0f}{r.raw:>12,.0f}{r.segment / r.raw:>7.2f}x   >= 0.5x")
    for name, r in results:
        if not r.cpu:
            continue
        # The inverse of CPU per batch, against the raw insert's: what the ratios above would
        # be if CPU were all that counted (and the database server's CPU, in neither, were equal).
        raw_ms = r.cpu["raw"] * 1000
        for side, label in (("api", "/v1/events"), ("segment", "Segment /v1/batch")):
            ms = r.cpu[side] * 1000
            print(
                f"CPU ms per batch, {name}, {label}: server {ms:.1f}, raw insert {raw_ms:.1f} "
                f"({r.cpu['raw'] / r.cpu[side]:.2f}x)"
            )
    if not args.people:
        return
    label = "people enrolled/s (start_workflow)"
    print(f"{label:<34}{enroll:>12,.0f}{starts:>12,.0f}{enroll / starts:>7.2f}x   >= 0.8x")
    print(f"(enrollment part took {took:.0f}s)")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per side")
    parser.add_argument("--rounds", type=int, default=4, help="alternating event rounds")
    parser.add_argument("--clients", type=int, default=2, help="API requests in flight")
    parser.add_argument("--people", type=int, default=100_000, help="people per side")
    parser.add_argument("--enroll-rounds", type=int, default=2, help="alternating enroll rounds")
    parser.add_argument("--concurrency", type=int, default=50, help="workflow starts in flight")
    parser.add_argument("--postgres", help="PostgreSQL URL (default: JOURNEY_TEST_POSTGRES_URL)")
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.serve:
        db_url, schema, temporal_address, port = arguments.serve
        asyncio.run(serve(db_url, schema, temporal_address, int(port)))
    else:
        asyncio.run(main(arguments))
