"""The capacity plan's arithmetic, on a case small enough to work out by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.capacity_plan import Costs, Wave, action_price, size, walk
from engine.dsl.loader import load_journey

JOURNEY = """\
id: hello-again
name: hello, then again a day later
entry: {api: true}
steps:
  - {id: hello, send: {channel: sms, template: hi}}
  - {id: pause, wait: 1d}
  - {id: again, send: {channel: sms, template: hi}}
  - {id: done, exit: {}}
"""


def counters(
    events: float, transitions: float, actions: float, redis: float, cpu: float, writes: float
) -> dict[str, float]:
    """Per-run counters as ``bench.capacity measure`` writes them (PostgreSQL)."""
    return {
        "history_events": events,
        "state_transitions": transitions,
        "history_bytes": 100 * events,
        "temporal:action": actions,
        "temporal:persistence": 2 * transitions,
        "redis:commands": redis,
        "redis:round_trips": redis / 4,
        "store:writes:deliveries": writes,
        "store:rows:deliveries": writes / 2,
        "store:bytes:deliveries": 500 * writes,
        "worker_cpu_ms": cpu,
    }


def measured() -> dict[str, Any]:
    # A run alone: 6 events, 3 transitions, 2 actions, 10 ms. The rested base adds a wait
    # (6, 3, 2, 3 ms); a send adds 18 events, 9 transitions, 4 actions, 26 Redis commands,
    # 20 ms and 2 row writes.
    base = counters(12, 6, 4, 0, 13, 0)
    send = counters(30, 15, 8, 26, 33, 2)
    wait = counters(18, 9, 6, 0, 16, 0)
    return {
        "measured_on": "2026-12-06",
        "runs_per_kind": 10,
        "stores": {
            "postgresql": {
                "runs": {
                    "run": counters(6, 3, 2, 0, 10, 0),
                    "base": base,
                    "send": send,
                    "wait": wait,
                },
                "profile_bytes": 1000.0,
                "redis_bytes_per_person": 500.0,
            }
        },
    }


def test_a_two_send_journey_sized_by_hand(tmp_path: Path) -> None:
    path = tmp_path / "hello.yaml"
    path.write_text(JOURNEY)
    journey = load_journey(path)
    costs = Costs.of(measured())
    w = walk(journey)
    wave = Wave(
        members=1_000_000,
        wave_sends=3600,
        wave_minutes=60,
        db_latency_ms=5,
        utilisation=0.5,
        runs_per_shard=1000,
        retention_days=30,
    )
    s = size(costs, journey, wave, w)

    # Per run: the run (3) + two sends (9 each) + a wait (3) = 24 state transitions; 2 + 4 + 4
    # + 2 = 12 actions; two bursts, each with one send.
    assert s.per_run["state_transitions"] == pytest.approx(24)
    assert s.per_run["actions"] == pytest.approx(12)
    assert [b["sends"] for b in s.bursts] == [1, 1]
    # 3,600 sends in the busiest burst over an hour: 3,600 people enter, one send a second.
    assert s.entrants == pytest.approx(3600)
    assert s.peak["sends"] == pytest.approx(1)
    # The first burst (start, send, the wait's timer) is the busiest: 15 transitions a run.
    assert s.peak["state_transitions"] == pytest.approx(15)
    assert s.peak["redis_commands"] == pytest.approx(26)
    # Each run rests a day: 3,600 open runs, 3.6 shards' worth at 1,000 a shard; the rate
    # needs 15 / (0.5 / 5 ms) = 0.15 of one: 4 shards.
    assert s.open_runs == pytest.approx(3600)
    assert s.shards_for_rate == pytest.approx(0.15)
    assert s.shards == 4
    # 33 ms of worker CPU a run in the busiest burst, 3,600 runs an hour: 0.033 of a core.
    assert s.workers == 1
    # 3,600 runs a day x 12 actions x 30 days = 1.296 M actions at $50 a million.
    assert s.actions_month == pytest.approx(1_296_000)
    assert s.actions_usd == pytest.approx(64.8)
    assert s.redis_memory_gb == pytest.approx(0.5)
    assert s.profiles_gb == pytest.approx(1.0)


def test_action_price_follows_the_published_tiers() -> None:
    # docs.temporal.io/cloud/pricing's own example: 11.25 M actions cost $525.
    assert action_price(11.25e6) == pytest.approx(525)
    assert action_price(200e6) == pytest.approx(250 + 225 + 400 + 1050 + 1500 + 2500)


def test_cart_recovery_sends_each_entrant_at_most_twice(repo_root: Path) -> None:
    journey = load_journey(repo_root / "journeys" / "cart_recovery.yaml")
    below_vip = walk(journey, branches={"value": "test"})
    shares = {step: v for (_, step), v in below_vip.visits.items()}
    # The holdout (10%) gets nothing; the rest get a copy, then the last call on timeout.
    assert shares["copy_a"] + shares["copy_b"] == pytest.approx(0.9)
    assert shares["nudge"] == pytest.approx(0.9)
    assert "vip_offer" not in shares
    # Those who pay within the 2 days leave before the last call.
    paying = walk(journey, branches={"value": "test"}, events={"wait_pay": 0.25})
    nudged = sum(v for (_, step), v in paying.visits.items() if step == "nudge")
    assert nudged == pytest.approx(0.9 * 0.75)
