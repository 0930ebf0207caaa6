"""The example journeys end to end, as a marketer would read them: the real `journeys/` files and
templates, the real contact policy in a real Redis, on the time-skipping server.

Cart recovery (priority 60) and dormant win-back (priority 40) compete for a few people on the same
morning. What the report says — reached, sent, suppressed by reason, converted, per step and per
variant — is checked against counts worked out here from the people, the documented split rule
(sha256 of journey, step and person into 10,000 buckets) and the policy, and against what reached
the connector.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from temporalio.testing import WorkflowEnvironment

from engine.caps.redis_caps import RedisCapService
from engine.domain import Event
from engine.dsl.loader import load_journey, load_policy
from engine.services.deploy import deploy_journey
from tests.harness import RedisServer, journey_report, person, running_worker, sqlite_store

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")


def documented_variant(journey_id: str, step_id: str, profile_id: str) -> str:
    """The split rule as the README states it, written again here on purpose: A 45%, B 45%,
    holdout 10% of 10,000 sticky buckets."""
    digest = hashlib.sha256(f"{journey_id}\x1f{step_id}\x1f{profile_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 10_000
    return "A" if bucket < 4_500 else "B" if bucket < 9_000 else "holdout"


async def test_cart_recovery_and_winback_report_what_the_policy_let_through(
    time_skipping_env: WorkflowEnvironment, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = time_skipping_env
    policy = load_policy(REPO / "journeys" / "policy.yaml")
    cart = load_journey(REPO / "journeys" / "cart_recovery.yaml")
    winback = load_journey(REPO / "journeys" / "winback.yaml")

    run = uuid.uuid4().hex[:6]
    ids = [f"e2e-{run}-{i:02d}" for i in range(20)]
    vip = set(ids[:4])  # carts of 300: the VIP offer, no split
    both = set(ids[16:])  # also dormant: win-back wants them the same morning
    payers = {ids[i] for i in (0, 4, 8, 12)}  # pay a day after entering (not the contested)
    people = [
        person(
            pid,
            cart_value=300 if pid in vip else 50,
            phone="+8613800138000",
            email=f"{pid}@example.com",
            wecom_external_userid=f"wm-{pid}",
        )
        for pid in ids
    ]

    redis = aioredis.Redis.from_url(redis_server.url, socket_connect_timeout=1, socket_timeout=2)
    await redis.flushdb()
    store = await sqlite_store(tmp_path)
    try:
        async with running_worker(env, store, tmp_path, caps=RedisCapService(redis, policy)) as h:
            now = (await env.get_current_time()).astimezone(SHANGHAI)
            t0 = now.replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=1)
            await env.sleep(t0 - now)
            templates = REPO / "journeys" / "templates"
            cart_v, _ = await deploy_journey(store, cart, templates, t0)
            winback_v, _ = await deploy_journey(store, winback, templates, t0)
            await h.router.refresh()
            await store.upsert_profiles(people)
            assert (await h.enroller.enroll(winback_v, sorted(both), t0))["started"] == 4
            assert (await h.enroller.enroll(cart_v, ids, t0))["started"] == 20

            await env.sleep(timedelta(days=1))
            paid_at: datetime = await env.get_current_time()
            for pid in sorted(payers):
                event = Event(f"pay-{pid}", pid, "order_paid", paid_at, {"amount": 99})
                await h.router.ingest(event, paid_at)
            for pid in ids:
                await h.result(cart.id, pid)
            for pid in both:
                await h.result(winback.id, pid)

            cart_report = await journey_report(store, cart)
            winback_report = await journey_report(store, winback)
            deliveries = await store.deliveries()
            connector_lines = h.sent_lines()
    finally:
        await store.aclose()
        await redis.aclose()

    split = {pid: documented_variant(cart.id, "test", pid) for pid in ids if pid not in vip}
    won_by_winback = {
        pid for pid in both if documented_variant(winback.id, "copy_test", pid) != "holdout"
    }
    copy = {v: {p for p, got in split.items() if got == v} for v in ("A", "B", "holdout")}
    messaged = vip | copy["A"] | copy["B"]
    nudged = messaged - payers  # no order within 2 days: the last call is due

    steps = {row.step: row for row in cart_report.steps}
    assert cart_report.entered == 20
    assert cart_report.converted == len(payers)
    assert (steps["pause"].reached, steps["value"].reached) == (20, 20)
    assert (steps["vip_offer"].reached, steps["vip_offer"].sent) == (4, 4)
    assert steps["test"].reached == 16
    for variant, step in (("A", "copy_a"), ("B", "copy_b")):
        # Everyone gets the copy: a person win-back reached first is held a day (global 1/1d),
        # not dropped (policy on_capped: defer, expire_after 2d).
        assert (steps[step].reached, steps[step].sent) == (len(copy[variant]),) * 2
    assert steps["wait_pay"].reached == len(messaged)
    # The last call would be a second cart-recovery touch within 7 days: the journey's own cap
    # refuses it and the step's on_suppressed ends the run.
    assert (steps["nudge"].reached, steps["nudge"].sent) == (len(nudged), 0)
    assert steps["nudge"].suppressed == len(nudged)
    [test] = [x for x in cart_report.experiments if x.step == "test"]
    assert {arm.variant: (arm.people, arm.conversions) for arm in test.arms} == {
        v: (len(copy[v]), len(copy[v] & payers)) for v in ("A", "B", "holdout")
    }  # every arm the journey declares, an empty one too
    # Suppressed by reason, as the report lists them.
    assert cart_report.suppression_reasons == {f"journey:{cart.id}:1/1w": len(nudged)}

    def reasons(journey_id: str, status: str) -> Counter[tuple[str, str | None]]:
        return Counter(
            (d.step_id, d.reason)
            for d in deliveries
            if d.journey_id == journey_id and d.status == status
        )

    assert reasons(cart.id, "suppressed") == Counter(
        {("nudge", f"journey:{cart.id}:1/1w"): len(nudged)}
    )
    held = {pid for pid in won_by_winback if pid in messaged}
    held_steps = Counter("copy_a" if split[p] == "A" else "copy_b" for p in held if p in split)
    assert reasons(cart.id, "deferred") == Counter(
        {(step, "global:1/1d"): n for step, n in held_steps.items()}
    )
    assert winback_report.entered == 4
    assert sum(row.sent for row in winback_report.steps) == len(won_by_winback)
    assert not reasons(winback.id, "suppressed")

    # What reached the connector is exactly what the report calls sent.
    sent_rows = [d for d in deliveries if d.status == "sent"]
    assert len(connector_lines) == len(sent_rows) == len(messaged) + len(won_by_winback)
    per_person = Counter(line["metadata"]["profile_id"] for line in connector_lines)
    assert max(per_person.values()) <= 2  # never more than the weekly journey + win-back touch
