"""The fatigue curve: people by marketing touches in the window, unsubscribe and complaint
rates, and the first touch count whose rate rises clearly above 0-1 touches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.analytics.fatigue import fatigue_curve
from engine.domain import Delivery, Event, Profile
from engine.dsl.policy import Policy
from engine.store import Store

pytestmark = pytest.mark.timeout(60)

POLICY = Policy.model_validate({"caps": {"global": [{"max": 1, "per": "1d"}]}})


def touch(pid: str, n: int, at: datetime, category: str = "marketing") -> Delivery:
    return Delivery(
        send_key=f"{pid}:{n}:{category}",
        journey_id="j",
        journey_version=1,
        profile_id=pid,
        step_id="s",
        channel="sms",
        template="t",
        category=category,  # type: ignore[arg-type]
        status="sent",
        created_at=at,
    )


async def test_the_curve_and_its_threshold(store: Store) -> None:
    groups = {0: 200, 1: 100, 2: 60, 4: 40}
    unsubscribed = {0: 1, 1: 2, 2: 2, 4: 10}
    people = [f"g{touches}-{i}" for touches, n in groups.items() for i in range(n)]
    await store.upsert_profiles([Profile(pid) for pid in people])
    now = datetime.now(UTC) + timedelta(seconds=5)
    hour = timedelta(hours=1)
    sends = []
    for touches, n in groups.items():
        for i in range(n):
            pid = f"g{touches}-{i}"
            sends += [touch(pid, k, now - (k + 1) * hour) for k in range(touches)]
            sends.append(touch(pid, 99, now - 9 * 24 * hour))  # before the window
            sends.append(touch(pid, 98, now - hour, "transactional"))  # not marketing
            if i < unsubscribed[touches]:
                if i % 2:
                    await store.set_subscription(pid, "sms", "unsubscribed", "api", now - hour)
                else:
                    await store.record_event(Event(f"u-{pid}", pid, "unsubscribed", now - hour))
    await store.record_event(Event("c-1", "g4-39", "complained", now - hour))
    await store.record_deliveries(sends)

    curve = await fatigue_curve(store, POLICY, now)

    rows = {r.touches: (r.people, r.unsubscribed, r.complained) for r in curve.rows}
    assert rows == {"0": (200, 1, 0), "1": (100, 2, 0), "2": (60, 2, 0), "4": (40, 10, 1)}
    assert curve.rows[3].rate.value == pytest.approx(0.25)
    assert curve.threshold == "4"
    assert curve.policy_cap == "7 per 7d (1 per 1d)"


async def test_nobody_at_all(store: Store) -> None:
    curve = await fatigue_curve(store, Policy(), datetime.now(UTC))
    assert (curve.rows, curve.threshold, curve.policy_cap) == ([], None, None)
