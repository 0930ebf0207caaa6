"""The report's aggregation against one hand-written SQL aggregate of the same numbers.

Seeds (seeded RNG) 1,000,000 delivery rows, 200,000 enrollments and 300,000 events for one
journey (a three-arm split, two sends per arm path, a last call), on SQLite and on PostgreSQL
(a fresh schema), then times, in alternating rounds on the same database:

- the report: ``Store.journey_facts`` — every aggregate of the journey's report (statuses,
  exits, reached per step, sends per step and status, suppression reasons, totals, arms,
  last-touch attribution, the day timeline, channel x lifecycle stage);
- the baseline: the same numbers written by hand, as an analyst would: one ``CREATE TEMP TABLE
  orders AS`` (goal events in the window with value, the run they belong to and their last
  touch) and plain ``GROUP BY`` statements over it and the ledger.

The ratio is baseline time / report time (1.0: as fast as the hand-written SQL; aim >= 0.5x).

    python -m bench.report [--scale 0.1] [--rounds 3] [--postgres URL]

PostgreSQL is measured when ``--postgres`` or ``JOURNEY_TEST_POSTGRES_URL`` gives a URL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.analytics.html import render_html
from engine.analytics.report import build_report
from engine.dsl.models import Journey
from engine.dsl.policy import Policy
from engine.dsl.tiers import Tiers
from engine.store import Store
from engine.store.analytics import GoalSpec, LifecycleSpec
from engine.store.tables import deliveries, enrollments, events

JOURNEY = "bench-report"
START = datetime(2026, 9, 1, tzinfo=UTC)
WITHIN = timedelta(days=7)
GOAL = GoalSpec("order_paid", WITHIN, "amount")
LIFECYCLE = LifecycleSpec()
CHUNK = 5000
VARIANTS = (("A", "copy_a", "wecom"), ("B", "copy_b", "sms"), ("holdout", None, None))
BENCH_JOURNEY = Journey.model_validate(
    {
        "id": JOURNEY,
        "name": "bench report",
        "entry": {"api": True},
        "goal": {"event": "order_paid", "within": "7d", "value": "amount"},
        "steps": [
            {
                "id": "test",
                "split": [
                    {"variant": "A", "weight": 45, "goto": "copy_a"},
                    {"variant": "B", "weight": 45, "goto": "copy_b"},
                    {"variant": "holdout", "weight": 10, "goto": "done"},
                ],
            },
            {"id": "copy_a", "send": {"channel": "wecom", "template": "copy_a", "next": "pause"}},
            {"id": "copy_b", "send": {"channel": "sms", "template": "copy_b", "next": "pause"}},
            {"id": "pause", "wait": "20h"},
            {"id": "nudge", "send": {"channel": "email", "template": "nudge"}},
            {"id": "done", "exit": {}},
        ],
    }
)
"""The journey the seeded rows belong to, for the whole report."""


def _rows(scale: float, seed: int) -> tuple[list[dict[str, Any]], ...]:
    rng = random.Random(seed)
    n_enrollments = int(200_000 * scale)
    n_deliveries = int(1_000_000 * scale)
    n_events = int(300_000 * scale)
    people = max(1, int(n_enrollments * 0.6))
    enrolled: list[dict[str, Any]] = []
    for i in range(n_enrollments):
        pid = f"p{i % people}"
        entered = START + timedelta(days=30 * (i // people), seconds=rng.randrange(25 * 86400))
        variant, first_step, _ = VARIANTS[rng.choices((0, 1, 2), (45, 45, 10))[0]]
        path = ["test", first_step, "pause", "nudge", "done"] if first_step else ["test", "done"]
        enrolled.append(
            {
                "id": f"e{i}",
                "journey_id": JOURNEY,
                "journey_version": 1,
                "profile_id": pid,
                "entered_at": entered,
                "status": "completed",
                "ended_at": entered + timedelta(days=3),
                "exit_step": "done",
                "path": path,
                "variants": {"test": variant},
            }
        )
    sent: list[dict[str, Any]] = []
    treated = [e for e in enrolled if len(e["path"]) > 2]
    for k in range(n_deliveries):
        e = treated[k % len(treated)]
        round_ = k // len(treated)
        step, channel = (
            (e["path"][1], "wecom" if e["path"][1] == "copy_a" else "sms")
            if round_ % 2 == 0
            else ("nudge", "email")
        )
        status = rng.choices(("sent", "suppressed", "failed"), (85, 12, 3))[0]
        sent.append(
            {
                "send_key": f"{e['id']}:{step}:{round_}",
                "journey_id": JOURNEY,
                "journey_version": 1,
                "profile_id": e["profile_id"],
                "step_id": step,
                "channel": channel,
                "template": step,
                "category": "marketing",
                "status": status,
                "reason": "global:1/1d" if status == "suppressed" else None,
                "provider_message_id": None,
                "detail": {},
                "created_at": e["entered_at"] + timedelta(hours=1 + 20 * round_),
                "updated_at": e["entered_at"],
            }
        )
    happened: list[dict[str, Any]] = []
    span = 60 * 86400
    for k in range(n_events):
        is_order = k % 2 == 0
        amount: Any = rng.choice((59, 99, 199, 19.9)) if rng.random() > 0.01 else "n/a"
        at = START + timedelta(seconds=rng.randrange(span))
        happened.append(
            {
                "event_id": f"x{k}",
                "profile_id": f"p{rng.randrange(people)}",
                "name": "order_paid" if is_order else "page_view",
                "properties": {"amount": amount} if is_order else {},
                "occurred_at": at,
                "received_at": at,
                "delivered_at": at,
            }
        )
    return enrolled, sent, happened


async def seed(store: Store, scale: float, seed_: int) -> None:
    enrolled, sent, happened = _rows(scale, seed_)
    for table, rows in ((enrollments, enrolled), (deliveries, sent), (events, happened)):
        for start in range(0, len(rows), CHUNK):
            async with store.engine.begin() as conn:
                await conn.execute(table.insert(), rows[start : start + CHUNK])
    async with store.engine.begin() as conn:
        await conn.execute(text("ANALYZE"))


# -- the hand-written baseline -------------------------------------------------------------------

SQLITE = {
    "until": "strftime('%Y-%m-%d %H:%M:%S', e.entered_at, '+{secs} seconds')"
    " || substr(e.entered_at, 20)",
    "value": "CASE WHEN json_type(x.properties, '$.amount') IN ('integer', 'real') "
    "THEN json_extract(x.properties, '$.amount') END",
    "day": "substr({col}, 1, 10)",
    "path": "json_each(n.path) AS s",
    "arms": "json_each(n.variants) AS v",
    "minus": "strftime('%Y-%m-%d %H:%M:%S', p.entered_at, '-{secs} seconds')"
    " || substr(p.entered_at, 20)",
}
POSTGRES = {
    "until": "e.entered_at + interval '{secs} seconds'",
    "value": "CASE WHEN jsonb_typeof(x.properties -> 'amount') = 'number' "
    "THEN (x.properties ->> 'amount')::numeric END",
    "day": "to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "path": "jsonb_array_elements_text(n.path) AS s",
    "arms": "jsonb_each_text(n.variants) AS v",
    "minus": "p.entered_at - interval '{secs} seconds'",
}


def baseline_statements(dialect: str) -> list[str]:
    d = SQLITE if dialect == "sqlite" else POSTGRES
    secs = int(WITHIN.total_seconds())
    j = f"'{JOURNEY}'"
    orders = f"""
        CREATE TEMP TABLE orders AS
        SELECT e.id AS enrollment_id, x.occurred_at, {d["value"]} AS value,
          (SELECT t.send_key FROM deliveries t
            WHERE t.journey_id = {j} AND t.profile_id = e.profile_id AND t.status = 'sent'
              AND t.created_at >= e.entered_at AND t.created_at <= x.occurred_at
            ORDER BY t.created_at DESC, t.send_key DESC LIMIT 1) AS touch_key
        FROM enrollments e JOIN events x
          ON x.profile_id = e.profile_id AND x.name = 'order_paid'
         AND x.occurred_at >= e.entered_at AND x.occurred_at <= {d["until"].format(secs=secs)}
        WHERE e.journey_id = {j} AND NOT EXISTS (
          SELECT 1 FROM enrollments l WHERE l.journey_id = {j} AND l.profile_id = e.profile_id
            AND l.entered_at > e.entered_at AND l.entered_at <= x.occurred_at)"""
    conv = """
        CREATE TEMP TABLE conv AS SELECT enrollment_id, count(*) AS orders,
          count(value) AS valued, coalesce(sum(value), 0) AS revenue,
          min(occurred_at) AS first_at FROM orders GROUP BY enrollment_id"""
    outcome = """count(*), count(c.enrollment_id), sum(c.orders), sum(c.valued), sum(c.revenue),
          sum(c.revenue * c.revenue)"""

    def stage(days: int) -> str:
        return d["minus"].format(secs=days * 86400)

    return [
        orders,
        conv,
        f"SELECT status, count(*) FROM enrollments WHERE journey_id = {j} GROUP BY status",
        f"SELECT exit_step, count(*) FROM enrollments WHERE journey_id = {j} "
        "AND status <> 'active' GROUP BY exit_step",
        f"SELECT s.value, count(DISTINCT n.id), count(DISTINCT c.enrollment_id) "
        f"FROM enrollments n JOIN {d['path']} ON true "
        f"LEFT JOIN conv c ON c.enrollment_id = n.id WHERE n.journey_id = {j} GROUP BY s.value",
        f"SELECT step_id, status, count(*) FROM deliveries WHERE journey_id = {j} "
        "GROUP BY step_id, status",
        f"SELECT reason, count(*) FROM deliveries WHERE journey_id = {j} "
        "AND status IN ('suppressed', 'expired') GROUP BY reason",
        f"SELECT {outcome} FROM enrollments n LEFT JOIN conv c ON c.enrollment_id = n.id "
        f"WHERE n.journey_id = {j}",
        f"SELECT v.key, v.value, {outcome} FROM enrollments n JOIN {d['arms']} ON true "
        f"LEFT JOIN conv c ON c.enrollment_id = n.id WHERE n.journey_id = {j} "
        "GROUP BY v.key, v.value",
        "SELECT t.step_id, t.channel, t.template, count(DISTINCT o.enrollment_id), count(*), "
        "coalesce(sum(o.value), 0) FROM orders o "
        "LEFT JOIN deliveries t ON t.send_key = o.touch_key "
        "GROUP BY t.step_id, t.channel, t.template",
        f"SELECT {d['day'].format(col='created_at')}, count(*) FROM deliveries "
        f"WHERE journey_id = {j} AND status = 'sent' GROUP BY 1",
        f"SELECT {d['day'].format(col='first_at')}, count(*) FROM conv GROUP BY 1",
        f"SELECT {d['day'].format(col='occurred_at')}, coalesce(sum(value), 0) FROM orders "
        "GROUP BY 1",
        f"""SELECT p.channel,
              CASE WHEN p.last_at IS NULL THEN 'prospect'
                   WHEN p.first_at >= {stage(30)} THEN 'new'
                   WHEN p.last_at >= {stage(60)} THEN 'active'
                   WHEN p.last_at >= {stage(120)} THEN 'dormant'
                   ELSE 'churned' END AS stage,
              count(*), count(c.enrollment_id), sum(c.orders), sum(c.valued), sum(c.revenue),
              sum(c.revenue * c.revenue)
            FROM (SELECT n.id, n.entered_at,
                   coalesce((SELECT t.channel FROM deliveries t WHERE t.journey_id = {j}
                     AND t.profile_id = n.profile_id AND t.status = 'sent'
                     AND t.created_at >= n.entered_at
                     AND (n.ended_at IS NULL OR t.created_at <= n.ended_at)
                     ORDER BY t.created_at, t.send_key LIMIT 1), 'none') AS channel,
                   (SELECT min(y.occurred_at) FROM events y WHERE y.profile_id = n.profile_id
                     AND y.name = 'order_paid' AND y.occurred_at < n.entered_at) AS first_at,
                   (SELECT max(y.occurred_at) FROM events y WHERE y.profile_id = n.profile_id
                     AND y.name = 'order_paid' AND y.occurred_at < n.entered_at) AS last_at
                  FROM enrollments n WHERE n.journey_id = {j}) p
            LEFT JOIN conv c ON c.enrollment_id = p.id GROUP BY 1, 2""",
        "DROP TABLE conv",
        "DROP TABLE orders",
    ]


async def baseline(store: Store) -> int:
    rows = 0
    async with store.engine.connect() as conn:
        if store.dialect == "postgresql":  # as the report does (engine.store.dialect_sql)
            await conn.execute(text("SET LOCAL jit = off"))
        for statement in baseline_statements(store.dialect):
            result = await conn.execute(text(statement))
            if result.returns_rows:
                rows += len(result.all())
        await conn.commit()
    return rows


async def report(store: Store) -> int:
    facts = await store.journey_facts(JOURNEY, GOAL, LIFECYCLE)
    return len(facts.arms) + len(facts.touches) + len(facts.days)


async def timed(fn: Callable[[Store], Any], store: Store) -> float:
    started = time.perf_counter()
    await fn(store)
    return time.perf_counter() - started


async def measure(name: str, store: Store, scale: float, rounds: int, seed_: int) -> None:
    await store.migrate()
    started = time.perf_counter()
    await seed(store, scale, seed_)
    print(f"{name}: seeded in {time.perf_counter() - started:.0f}s", flush=True)
    await _same_numbers(store)
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):
        theirs.append(await timed(baseline, store))
        ours.append(await timed(report, store))
    a, b = statistics.median(theirs), statistics.median(ours)
    print(
        f"{name}: hand-written {a:.2f}s, report {b:.2f}s (medians of {rounds}) -> "
        f"ratio {a / b:.2f}x",
        flush=True,
    )
    # The report's other two aggregates, over the whole base (no baseline: one GROUP BY each).
    end = START + timedelta(days=60)
    started = time.perf_counter()
    await store.kpi_facts(LIFECYCLE, "amount", START + timedelta(days=30), end)
    kpis = time.perf_counter() - started
    started = time.perf_counter()
    await store.fatigue_facts(end - timedelta(days=7), end, last_group=10)
    print(
        f"{name}: nine numbers {kpis:.2f}s, fatigue {time.perf_counter() - started:.2f}s",
        flush=True,
    )
    # The whole page a marketer opens: every aggregate above, the experiments' statistics and
    # the HTML with its charts (no baseline: the bound is absolute, under 5 s).
    started = time.perf_counter()
    page = render_html(
        await build_report(store, [BENCH_JOURNEY], policy=Policy(), tiers=Tiers(), now=end)
    )
    print(
        f"{name}: whole HTML report {time.perf_counter() - started:.2f}s ({len(page) // 1024} KB)",
        flush=True,
    )


async def _same_numbers(store: Store) -> None:
    """The two sides must agree before their times mean anything: compare the arms."""
    facts = await store.journey_facts(JOURNEY, GOAL, LIFECYCLE)
    async with store.engine.connect() as conn:
        statements = baseline_statements(store.dialect)
        await conn.execute(text(statements[0]))
        await conn.execute(text(statements[1]))
        arms = await _rows_of(conn, statements[8])
        await conn.execute(text("DROP TABLE conv"))
        await conn.execute(text("DROP TABLE orders"))
        await conn.commit()
    by_hand = {(r[0], r[1]): (int(r[2]), int(r[3]), round(float(r[6] or 0), 4)) for r in arms}
    ours = {k: (o.people, o.converted, round(o.revenue, 4)) for k, o in facts.arms.items()}
    if by_hand != ours:
        raise SystemExit(f"the two sides disagree: {by_hand} != {ours}")


async def _rows_of(conn: AsyncConnection, statement: str) -> list[Any]:
    return list((await conn.execute(text(statement))).all())


async def main(scale: float, rounds: int, postgres: str | None, seed_: int) -> None:
    print(
        f"rows: {int(1_000_000 * scale):,} deliveries, {int(200_000 * scale):,} enrollments, "
        f"{int(300_000 * scale):,} events",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.from_url(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        try:
            await measure("sqlite", store, scale, rounds, seed_)
        finally:
            await store.aclose()
    if postgres:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        store = Store.from_url(postgres, schema=schema)
        try:
            await measure("postgresql", store, scale, rounds, seed_)
        finally:
            await store.aclose()
            async with Store.from_url(postgres) as admin, admin.engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="0.1: a tenth of the rows")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--postgres", help="PostgreSQL URL (default: JOURNEY_TEST_POSTGRES_URL)")
    args = parser.parse_args()
    url = args.postgres or os.environ.get("JOURNEY_TEST_POSTGRES_URL")
    asyncio.run(main(args.scale, args.rounds, url, args.seed))
