"""Sizing from measured costs: what a journey run costs, and what a wave of them needs.

Pure arithmetic over the costs ``bench.capacity measure`` wrote (per-run counters of one small
journey per step kind) and a journey file; nothing here touches a server.

The model:

- A step's cost is its kind's journey minus the ``base`` journey (``exit`` alone: the start,
  the ledger row, the end), per run. A run of a journey costs the base plus each step's cost
  times the share of runs that reach it. Splits share by weight; branches evenly unless
  pinned (``branch``); a ``wait_for`` times out unless given a share that gets its event
  (``events``); sends are taken as sent.
- A segment journey enters its people together, so their runs move in step: everything between
  two resting steps (``wait``, ``wait_for``) happens for all of them at about the same time, a
  *burst*. Each burst is spread over ``wave_minutes``. The wave's size is given as the sends of
  its busiest burst; rates are the busiest burst's, per resource.
- History shards: a shard writes one update at a time (Temporal docs), so one shard carries at
  most ``utilisation / db_latency`` state transitions a second; and it should hold no more than
  ``runs_per_shard`` open runs (the docs: "tens of thousands" each). The larger need, rounded up
  to a power of two, is the shard count.
- Workers: a ``journey worker`` is one Python process, one core at most; the measured worker CPU
  per run sets how many the busiest burst needs at ``utilisation``.
- Temporal Cloud: actions counted by the server's ``action`` metric, priced by the published
  Pay-As-You-Go tiers (Business plan and above); storage by the published GBh prices.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from engine.dsl.models import (
    BranchStep,
    Else,
    ExitStep,
    Journey,
    SendStep,
    SplitStep,
    UpdateStep,
    WaitForStep,
    WaitStep,
)

KINDS = ("wait", "wait_for", "branch", "split", "send", "update")
RESTING = ("wait", "wait_for")

METRICS: dict[str, str] = {
    "history_events": "history events",
    "state_transitions": "state transitions",
    "history_bytes": "history bytes",
    "actions": "Temporal actions",
    "temporal_db": "Temporal DB requests",
    "redis_commands": "Redis commands",
    "redis_round_trips": "Redis round trips",
    "store_writes": "store row writes",
    "store_rows": "store rows kept",
    "store_bytes": "store bytes kept",
    "worker_cpu_ms": "worker CPU ms",
}
"""Per-run metrics the plan uses, in table order."""

ACTION_TIERS: tuple[tuple[float, float], ...] = (
    (5e6, 50.0),
    (5e6, 45.0),
    (10e6, 40.0),
    (30e6, 35.0),
    (50e6, 30.0),
    (100e6, 25.0),
)
"""Temporal Cloud Pay-As-You-Go, Business plan and above: (millions in the tier, USD per
million), docs.temporal.io/cloud/pricing. Beyond 200M a month the price is by agreement with
Temporal; the plan prices it at the last tier's rate and says so."""
CLOUD_DEFAULT_APS = 500
"""A Temporal Cloud namespace's default actions-per-second limit (docs.temporal.io/cloud/limits);
on On-Demand Capacity it rises with the last 7 days' use, never below this."""
ACTIVE_GBH_USD = 0.042
RETAINED_GBH_USD = 0.00105
HOURS_PER_MONTH = 744
"""Temporal Cloud's conversion: 1 GB for a month is 744 GBh."""


def metric(run: Mapping[str, float], name: str) -> float:
    """One plan metric from a kind's measured per-run counters."""
    if name == "actions":
        return run.get("temporal:action", 0.0)
    if name == "temporal_db":
        return run.get("temporal:persistence", 0.0)
    if name == "redis_commands":
        return run.get("redis:commands", 0.0)
    if name == "redis_round_trips":
        return run.get("redis:round_trips", 0.0)
    if name in ("store_writes", "store_rows", "store_bytes"):
        prefix = {"store_writes": "writes", "store_rows": "rows", "store_bytes": "bytes"}[name]
        total = sum(v for k, v in run.items() if k.startswith(f"store:{prefix}:"))
        if name == "store_writes" and not any(k.startswith("store:writes:") for k in run):
            # SQLite keeps no write statistics: rows added is the floor of what was written.
            total = sum(v for k, v in run.items() if k.startswith("store:rows:"))
        return total
    return float(run.get(name, 0.0))


@dataclass(frozen=True)
class Costs:
    """Per-run costs of the base run and of each step kind, on one store."""

    store: str
    base: dict[str, float]
    steps: dict[str, dict[str, float]]
    redis_bytes_per_person: float
    profile_bytes: float

    @classmethod
    def of(cls, measured: Mapping[str, Any], store: str | None = None) -> Costs:
        stores = measured["stores"]
        name = store or ("postgresql" if "postgresql" in stores else "sqlite")
        runs = stores[name]["runs"]
        base = {m: metric(runs["base"], m) for m in METRICS}
        steps = {
            kind: {m: metric(runs[kind], m) - base[m] for m in METRICS}
            for kind in KINDS
            if kind in runs
        }
        return cls(
            store=name,
            base={m: metric(runs["run"], m) for m in METRICS},
            steps=steps,
            redis_bytes_per_person=stores[name].get("redis_bytes_per_person", 0.0),
            profile_bytes=stores[name].get("profile_bytes", 0.0),
        )


def action_agreement(measured: Mapping[str, Any], store: str) -> tuple[int, int]:
    """(kinds whose actions counted from sampled histories by Temporal Cloud's rules equal the
    server's ``action`` metric, kinds measured): the cross-check of the actions column."""
    runs = measured["stores"][store]["runs"]
    same = sum(
        abs(run.get("actions_from_history", 0.0) - run.get("temporal:action", 0.0)) < 0.05
        for run in runs.values()
    )
    return same, len(runs)


def kind_of(step: object) -> str | None:
    for kind, model in (
        ("wait", WaitStep),
        ("wait_for", WaitForStep),
        ("branch", BranchStep),
        ("split", SplitStep),
        ("send", SendStep),
        ("update", UpdateStep),
    ):
        if isinstance(step, model):
            return kind
    return None


@dataclass
class Walk:
    """Where a journey's runs go: expected visits per (burst, step), and time spent resting."""

    visits: dict[tuple[int, str], float] = field(default_factory=lambda: defaultdict(float))
    rest_days: float = 0.0


WAIT_UNTIL_DAYS = 0.5
"""A ``wait: {until: ...}`` lasts between nothing and a day: half a day on average."""


def walk(
    journey: Journey,
    branches: Mapping[str, str] | None = None,
    events: Mapping[str, float] | None = None,
) -> Walk:
    """Expected visits of each step by one run, by burst (resting steps passed before it).

    ``branches``: step id -> the target every run takes; ``events``: wait_for step id -> the
    share of runs whose event arrives (they leave at once; the rest wait the whole timeout).
    """
    branches = dict(branches or {})
    events = dict(events or {})
    result = Walk()
    frontier: dict[tuple[int, str], float] = {(0, journey.steps[0].id): 1.0}
    for _ in range(10 * len(journey.steps) + 10):  # a journey with a loop is cut off here
        if not frontier:
            break
        following: dict[tuple[int, str], float] = defaultdict(float)
        for (burst, step_id), share in frontier.items():
            result.visits[(burst, step_id)] += share
            for target, part, rested in _exits(journey, step_id, branches, events):
                if target is None:
                    continue
                result.rest_days += share * part * rested
                following[(burst + _rests(journey, step_id), target)] += share * part
        frontier = {k: v for k, v in following.items() if v > 1e-12}
    return result


def _rests(journey: Journey, step_id: str) -> bool:
    return kind_of(journey.step(step_id)) in RESTING


def _days(length: timedelta) -> float:
    return length / timedelta(days=1)


def _exits(
    journey: Journey, step_id: str, branches: Mapping[str, str], events: Mapping[str, float]
) -> list[tuple[str | None, float, float]]:
    """(next step, share of the runs here, days rested on the way) for each way out."""
    step = journey.step(step_id)
    below = journey.following(step_id)
    if isinstance(step, ExitStep):
        return []
    if isinstance(step, WaitStep):
        days = WAIT_UNTIL_DAYS if not isinstance(step.wait, timedelta) else _days(step.wait)
        return [(step.next or below, 1.0, days)]
    if isinstance(step, WaitForStep):
        spec = step.wait_for
        got = events.get(step_id, 0.0)
        # Those whose event comes rest until it comes: half the timeout on average.
        return [
            (spec.on_event or below, got, _days(spec.timeout) / 2),
            (spec.on_timeout or below, 1.0 - got, _days(spec.timeout)),
        ]
    if isinstance(step, BranchStep):
        targets = [c.else_ if isinstance(c, Else) else c.goto for c in step.branch]
        if not isinstance(step.branch[-1], Else):
            targets.append(below)  # type: ignore[arg-type]
        if step_id in branches:
            return [(branches[step_id], 1.0, 0.0)]
        return [(t, 1.0 / len(targets), 0.0) for t in targets]
    if isinstance(step, SplitStep):
        total = sum(v.weight for v in step.split)
        return [(v.goto, v.weight / total, 0.0) for v in step.split]
    if isinstance(step, SendStep):
        return [(step.send.next or below, 1.0, 0.0)]
    if isinstance(step, UpdateStep):
        return [(step.next or below, 1.0, 0.0)]
    raise TypeError(f"unknown step kind {type(step).__name__}")


@dataclass(frozen=True)
class Wave:
    members: int = 10_000_000
    wave_sends: int = 1_000_000
    wave_minutes: float = 60.0
    db_latency_ms: float = 5.0
    utilisation: float = 0.5
    runs_per_shard: int = 10_000
    retention_days: float = 30.0
    """Temporal Cloud's default retention of closed runs (1-90 days)."""


@dataclass(frozen=True)
class Sizing:
    per_run: dict[str, float]
    bursts: list[dict[str, float]]
    """Per entrant: each burst's cost (and ``sends``)."""
    entrants: float
    peak: dict[str, float]
    """Per second, the busiest burst's, per metric."""
    open_runs: float
    shards_for_rate: float
    shards_for_runs: float
    shards: int
    workers: int
    actions_month: float
    actions_usd: float
    active_storage_usd: float
    retained_storage_usd: float
    redis_memory_gb: float
    profiles_gb: float
    store_gb_day: float


def per_run(
    costs: Costs, w: Walk, journey: Journey
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """A run's expected cost, in all and per burst (the base run's cost in the first burst)."""
    last = max((b for b, _ in w.visits), default=0)
    bursts = [dict.fromkeys([*METRICS, "sends"], 0.0) for _ in range(last + 1)]
    for m in METRICS:
        bursts[0][m] += costs.base[m]
    for (burst, step_id), share in w.visits.items():
        kind = kind_of(journey.step(step_id))
        if kind is None:
            continue
        for m in METRICS:
            bursts[burst][m] += share * costs.steps[kind][m]
        if kind == "send":
            bursts[burst]["sends"] += share
    total = {m: sum(b[m] for b in bursts) for m in [*METRICS, "sends"]}
    return total, bursts


def size(costs: Costs, journey: Journey, wave: Wave, w: Walk) -> Sizing:
    total, bursts = per_run(costs, w, journey)
    busiest_sends = max(b["sends"] for b in bursts)
    if busiest_sends <= 0:
        raise ValueError(f"journey {journey.id} sends nothing: no wave of sends to size")
    entrants = wave.wave_sends / busiest_sends
    seconds = wave.wave_minutes * 60
    peak = {m: max(b[m] for b in bursts) * entrants / seconds for m in [*METRICS, "sends"]}
    open_runs = entrants * w.rest_days
    per_shard = wave.utilisation / (wave.db_latency_ms / 1000)
    shards_for_rate = peak["state_transitions"] / per_shard
    shards_for_runs = open_runs / wave.runs_per_shard
    shards = 2 ** math.ceil(math.log2(max(shards_for_rate, shards_for_runs, 1.0)))
    workers = math.ceil(peak["worker_cpu_ms"] / 1000 / wave.utilisation)
    actions_month = entrants * total["actions"] * 30
    history_gb = total["history_bytes"] / 1e9
    return Sizing(
        per_run=total,
        bursts=bursts,
        entrants=entrants,
        peak=peak,
        open_runs=open_runs,
        shards_for_rate=shards_for_rate,
        shards_for_runs=shards_for_runs,
        shards=shards,
        workers=workers,
        actions_month=actions_month,
        actions_usd=action_price(actions_month),
        active_storage_usd=open_runs * history_gb * HOURS_PER_MONTH * ACTIVE_GBH_USD,
        retained_storage_usd=entrants
        * wave.retention_days
        * history_gb
        * HOURS_PER_MONTH
        * RETAINED_GBH_USD,
        redis_memory_gb=wave.members * costs.redis_bytes_per_person / 1e9,
        profiles_gb=wave.members * costs.profile_bytes / 1e9,
        store_gb_day=entrants * total["store_bytes"] / 1e9,
    )


def action_price(actions: float) -> float:
    """USD for a month's actions at the Pay-As-You-Go tiers."""
    left, usd = actions, 0.0
    for size_, price in ACTION_TIERS:
        part = min(left, size_)
        usd += part / 1e6 * price
        left -= part
    return usd + left / 1e6 * ACTION_TIERS[-1][1]
