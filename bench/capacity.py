"""What a journey run costs, and what a brand's daily wave needs (docs/capacity.md).

    python -m bench.capacity measure [--runs 200] [--postgres URL] [--out docs/capacity-costs.json]
    python -m bench.capacity plan journeys/cart_recovery.yaml [--branch value=test]
        [--members 10000000] [--wave-sends 1000000] [--wave-minutes 60] [--costs FILE]

``measure`` runs one small journey per step kind on the embedded stack and writes each kind's
per-run counters (bench/capacity_measure.py). ``plan`` turns those costs and a journey file into
the sizing (bench/capacity_plan.py) and prints it as Markdown; docs/capacity.md shows that
output verbatim, and a test holds the two equal.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import subprocess
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.capacity_plan import (
    CLOUD_DEFAULT_APS,
    KINDS,
    METRICS,
    Costs,
    Sizing,
    Wave,
    action_agreement,
    size,
    walk,
)
from engine.dsl.loader import load_journey
from engine.servers import find_binary

REPO = Path(__file__).resolve().parent.parent
COSTS = REPO / "docs" / "capacity-costs.json"

_DIGITS = {
    "history_events": 1,
    "state_transitions": 1,
    "history_bytes": 0,
    "actions": 2,
    "temporal_db": 1,
    "redis_commands": 1,
    "redis_round_trips": 1,
    "store_writes": 1,
    "store_rows": 2,
    "store_bytes": 0,
    "worker_cpu_ms": 1,
}


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def cost_table(costs: Costs) -> list[str]:
    """Per-run cost of the base run and of each step kind, as a Markdown table."""
    head = "| per run | " + " | ".join(METRICS[m] for m in METRICS) + " |"
    lines = [head, "|---" + "|---:" * len(METRICS) + "|"]
    rows = [("run (start, ledger, exit)", costs.base)] + [
        (f"+ `{kind}`", costs.steps[kind]) for kind in KINDS if kind in costs.steps
    ]
    for label, values in rows:
        cells = " | ".join(_n(values[m], _DIGITS[m]) for m in METRICS)
        lines.append(f"| {label} | {cells} |")
    return lines


def sizing_table(s: Sizing, wave: Wave) -> list[str]:
    """The wave's needs as a Markdown table: quantity, value, how it follows."""
    p = s.peak
    rows = [
        ("runs entering a day", _n(s.entrants), "wave sends / sends per run in the busiest burst"),
        ("open runs (steady state)", _n(s.open_runs), "entering a day x days a run rests"),
        ("sends a second (busiest burst)", _n(p["sends"]), "wave sends / wave minutes"),
        (
            "Temporal state transitions a second",
            _n(p["state_transitions"]),
            "measured per step x runs in the busiest burst",
        ),
        ("Temporal history events a second", _n(p["history_events"]), "as above"),
        (
            "Temporal actions a second",
            _n(p["actions"]),
            f"as above; {p['actions'] / CLOUD_DEFAULT_APS:,.1f}x a Cloud namespace's default "
            f"{CLOUD_DEFAULT_APS} APS",
        ),
        ("Temporal DB requests a second", _n(p["temporal_db"]), "as above (dev server, SQLite)"),
        (
            "history shards",
            f"{s.shards:,}",
            f"max({s.shards_for_rate:,.0f} for the rate, {s.shards_for_runs:,.0f} for open runs),"
            " next power of two",
        ),
        ("Redis commands a second", _n(p["redis_commands"]), "measured per step x runs"),
        ("Redis round trips a second", _n(p["redis_round_trips"]), "as above"),
        (
            "Redis memory if every member holds counters",
            f"{s.redis_memory_gb:,.1f} GB",
            "members x measured bytes per person sent to",
        ),
        ("store row writes a second", _n(p["store_writes"]), "measured per step x runs"),
        ("store growth a day", f"{s.store_gb_day:,.2f} GB", "runs x bytes kept per run"),
        ("profiles", f"{s.profiles_gb:,.1f} GB", "members x measured bytes per profile"),
        (
            "runs a second one worker carries (busiest burst)",
            _n(1000 / max(b["worker_cpu_ms"] for b in s.bursts)),
            "1,000 ms / measured worker CPU ms per run in that burst",
        ),
        (
            "journey workers (1 core each)",
            f"{s.workers:,}",
            f"worker CPU a second in the busiest burst / {wave.utilisation:.0%}",
        ),
        (
            "Temporal Cloud actions a month",
            f"{s.actions_month / 1e6:,.0f} M",
            "runs a day x actions per run x 30",
        ),
        (
            "Temporal Cloud actions, USD a month",
            f"{s.actions_usd:,.0f}",
            "Pay-As-You-Go tiers (over 200 M: by agreement, here at the last tier)",
        ),
        (
            "Temporal Cloud storage, USD a month",
            f"{s.active_storage_usd + s.retained_storage_usd:,.0f}",
            f"open runs' histories (active) + {wave.retention_days:g} days retained",
        ),
    ]
    lines = ["| quantity | value | from |", "|---|---:|---|"]
    lines += [f"| {q} | {v} | {how} |" for q, v, how in rows]
    return lines


def plan_text(
    measured: dict[str, Any],
    journey_path: Path,
    wave: Wave,
    branches: dict[str, str],
    events: dict[str, float],
    store: str | None = None,
) -> str:
    """Everything ``plan`` prints, as one Markdown string."""
    costs = Costs.of(measured, store)
    journey = load_journey(journey_path)
    w = walk(journey, branches, events)
    s = size(costs, journey, wave, w)
    pins = ", ".join(f"{k}->{v}" for k, v in branches.items()) or "none"
    got = ", ".join(f"{k}: {v:.0%}" for k, v in events.items()) or "none (all time out)"
    out = [
        f"Costs measured {measured['measured_on']} ({measured['runs_per_kind']} runs per kind; "
        f"store: {costs.store}).",
        "",
        *cost_table(costs),
        "",
        "Actions counted from sampled histories by Temporal Cloud's rules equal the server's "
        "`action` metric for {} of {} measured journeys.".format(
            *action_agreement(measured, costs.store)
        ),
        "",
        f"Journey `{journey.id}` ({journey_path.name}); branches pinned: {pins}; "
        f"events arriving: {got}.",
        f"Per run: {_n(s.per_run['sends'], 2)} sends, {_n(s.per_run['actions'], 1)} actions, "
        f"{_n(s.per_run['state_transitions'], 1)} state transitions, "
        f"{_n(s.per_run['history_events'], 1)} history events, "
        f"{_n(s.per_run['redis_commands'], 1)} Redis commands, "
        f"{_n(s.per_run['store_writes'], 1)} store row writes, "
        f"{_n(s.per_run['worker_cpu_ms'], 1)} worker CPU ms; {len(s.bursts)} bursts.",
        "",
        f"{wave.members:,} members; {wave.wave_sends:,} sends in the busiest burst, spread over "
        f"{wave.wave_minutes:g} minutes; shards at {wave.db_latency_ms:g} ms a write and "
        f"{wave.utilisation:.0%} busy, at most {wave.runs_per_shard:,} open runs each.",
        "",
        *sizing_table(s, wave),
    ]
    return "\n".join(out) + "\n"


# -- measure --------------------------------------------------------------------------------------


def versions(pg: str | None, redis_version: str) -> dict[str, str]:
    cli = subprocess.run(
        [str(find_binary("temporal")), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    found = {
        "temporal": cli,
        "temporalio": importlib.metadata.version("temporalio"),
        "redis": redis_version,
        "python": platform.python_version(),
    }
    if pg:
        found["postgresql"] = pg
    return found


async def measure(runs: int, pg_url: str | None) -> dict[str, Any]:
    """Every kind measured on SQLite, and on PostgreSQL when ``pg_url`` is given (in a scratch
    schema, dropped after)."""
    from bench.capacity_measure import Database, embedded, measure_database
    from engine.store import Store

    home = Path(tempfile.mkdtemp(prefix="journey-capacity-"))
    databases = [Database("sqlite", f"sqlite+aiosqlite:///{home / 'journey.db'}")]
    pg_version = None
    if pg_url:
        databases.append(Database("postgresql", pg_url, f"cap_{uuid.uuid4().hex[:10]}"))
        async with Store.from_url(pg_url) as admin, admin.engine.connect() as conn:
            pg_version = (await conn.execute(text("SHOW server_version"))).scalar()
    load = os.getloadavg()
    results: dict[str, Any] = {}
    async with embedded(home) as setup:
        redis_version = (await setup.redis.info("server"))["redis_version"]
        for db in databases:
            try:
                results[db.name] = await measure_database(
                    setup, db, runs, ["run", "base", *KINDS], lambda line: print(line, flush=True)
                )
            finally:
                if db.schema:
                    async with Store.from_url(db.url) as admin, admin.engine.begin() as conn:
                        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{db.schema}" CASCADE'))
    document = {
        "measured_on": datetime.now(UTC).date().isoformat(),
        "conditions": (
            f"embedded stack (Temporal dev server, SQLite persistence, WAL) and Redis on "
            f"{os.cpu_count()} cores shared with other work (load average "
            f"{load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)"
        ),
        "versions": versions(pg_version, str(redis_version)),
        "runs_per_kind": runs,
        "stores": results,
    }
    return document


# -- command line ---------------------------------------------------------------------------------


def _pairs(values: list[str]) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, target = value.partition("=")
        if not sep:
            raise SystemExit(f"expected STEP=VALUE, got {value!r}")
        pairs[key] = target
    return pairs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    m = commands.add_parser("measure", help="measure per-run costs by step kind")
    m.add_argument("--runs", type=int, default=200, help="runs per step kind")
    m.add_argument("--postgres", help="PostgreSQL URL (default: JOURNEY_TEST_POSTGRES_URL)")
    m.add_argument("--out", type=Path, default=COSTS)
    p = commands.add_parser("plan", help="size a wave of a journey from measured costs")
    p.add_argument("journey", type=Path)
    p.add_argument("--costs", type=Path, default=COSTS)
    p.add_argument(
        "--store", choices=["sqlite", "postgresql"], help="default: postgresql if measured"
    )
    p.add_argument("--branch", action="append", default=[], help="STEP=TARGET every run takes")
    p.add_argument("--event", action="append", default=[], help="WAIT_FOR_STEP=SHARE that gets it")
    defaults = Wave()
    p.add_argument("--members", type=int, default=defaults.members)
    p.add_argument("--wave-sends", type=int, default=defaults.wave_sends)
    p.add_argument("--wave-minutes", type=float, default=defaults.wave_minutes)
    p.add_argument("--db-latency-ms", type=float, default=defaults.db_latency_ms)
    p.add_argument("--utilisation", type=float, default=defaults.utilisation)
    p.add_argument("--runs-per-shard", type=int, default=defaults.runs_per_shard)
    p.add_argument("--retention-days", type=float, default=defaults.retention_days)
    args = parser.parse_args(argv)
    if args.command == "measure":
        pg = args.postgres or os.environ.get("JOURNEY_TEST_POSTGRES_URL")
        document = asyncio.run(measure(args.runs, pg))
        args.out.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.out}")
        return
    wave = Wave(
        members=args.members,
        wave_sends=args.wave_sends,
        wave_minutes=args.wave_minutes,
        db_latency_ms=args.db_latency_ms,
        utilisation=args.utilisation,
        runs_per_shard=args.runs_per_shard,
        retention_days=args.retention_days,
    )
    events = {k: float(v) for k, v in _pairs(args.event).items()}
    measured = json.loads(args.costs.read_text())
    print(plan_text(measured, args.journey, wave, _pairs(args.branch), events, args.store), end="")


if __name__ == "__main__":
    main()
