"""The contact policy file: the example validates; mistakes are located, all at once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from engine.dsl.errors import DslError
from engine.dsl.loader import load_policy

REPO = Path(__file__).resolve().parents[2]


def test_the_example_policy_reads_as_written() -> None:
    policy = load_policy(REPO / "journeys" / "policy.yaml")
    assert [(r.max, r.per) for r in policy.caps.global_] == [
        (1, timedelta(days=1)),
        (4, timedelta(days=7)),
    ]
    assert policy.quiet_hours is not None and policy.quiet_hours.from_ == "21:00"
    assert policy.on_capped.action == "defer"
    assert policy.arbitration.window == timedelta(minutes=10)


def test_every_mistake_is_reported_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "timezone: Mars/Olympus\n"
        "caps:\n"
        "  global: [{max: 0, per: 1d}]\n"
        "  channels: {sms: [{max: 1, per: 200d}]}\n"
        "quiet_hours: {from: '25:00', to: '09:00', action: shout}\n"
        "on_capped: {action: defer, expire_after: soon}\n",
        encoding="utf-8",
    )
    with pytest.raises(DslError) as caught:
        load_policy(path)
    lines = [(p.line, p.where) for p in caught.value.problems]
    assert lines == [
        (1, "timezone"),
        (3, "caps.global[0].max"),
        (4, "caps.channels.sms[0].per"),
        (5, "quiet_hours.from"),
        (5, "quiet_hours.action"),
        (6, "on_capped.expire_after"),
    ]
