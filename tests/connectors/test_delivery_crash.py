"""A worker SIGKILLed after an SMS provider took the messages and before the delivery log heard of
it: the retried sends never reach the provider again, each is logged ``unknown`` and shown.

Real parts: ``journey worker`` processes, the Temporal dev server, Redis, SQLite and a local
Aliyun-style SMS provider (which, like Aliyun, does not deduplicate) that stalls its answers so
the kill lands in the window.
"""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

import pytest
from providers import ALIYUN_KEY_ID, ALIYUN_SECRET, Providers
from ruamel.yaml import YAML
from temporalio.testing import WorkflowEnvironment

from engine.analytics.text import format_journey
from engine.dsl.models import Journey
from engine.services.deploy import deploy_journey
from engine.services.enroll import Enroller
from engine.services.why import why
from tests.harness import (
    RedisServer,
    journey_report,
    person,
    sqlite_store,
    start_worker_process,
    stop_processes,
    wait_until,
)

# The retries come when the killed attempts time out (30 s); the rest takes a few seconds.
pytestmark = pytest.mark.timeout(150)

PEOPLE = 6


async def test_a_worker_killed_mid_send_never_sends_an_sms_twice(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    redis_server: RedisServer,
    providers: Providers,
    providers_url: str,
) -> None:
    store = await sqlite_store(tmp_path)
    templates = tmp_path / "templates"
    templates.mkdir()
    YAML().dump({"text": "新人券已到账", "template_code": "SMS_1"}, templates / "coupon.yaml")
    journey = Journey.model_validate(
        {
            "id": f"sms-crash-{uuid.uuid4().hex[:6]}",
            "name": "n",
            "entry": {"api": True},
            "steps": [
                {"id": "first", "send": {"channel": "sms", "template": "coupon"}},
                {"id": "pause", "wait": "1s"},
                {"id": "second", "send": {"channel": "sms", "template": "coupon"}},
            ],
        }
    )
    now = await dev_env.get_current_time()
    version, _ = await deploy_journey(store, journey, templates, now)
    # Redis outlives the test: people of its own, so the touches counted here trouble no other.
    tag = uuid.uuid4().hex[:6]
    people = [person(f"{tag}-{i}", phone=f"+86138000000{i:02d}") for i in range(PEOPLE)]
    await store.upsert_profiles(people)

    settings = {
        "JOURNEY_CHANNELS": json.dumps({"sms": "sms"}),
        "JOURNEY_SMS_BASE_URL": providers_url,
        "JOURNEY_SMS_ACCESS_KEY_ID": ALIYUN_KEY_ID,
        "JOURNEY_SMS_ACCESS_KEY_SECRET": ALIYUN_SECRET,
        "JOURNEY_SMS_SIGN_NAME": "鲜果铺",
    }
    queue = f"sms-crash-{uuid.uuid4().hex[:6]}"
    database = tmp_path / "journey.db"
    providers.stall = 60.0  # take each message, then hold the answer
    first = start_worker_process(
        dev_env, database, queue, tmp_path / "worker1.log", redis_server, settings
    )
    second = None
    try:
        enroller = Enroller(store, dev_env.client, queue)
        assert (await enroller.enroll(version, [p.id for p in people], now))["started"] == PEOPLE

        async def all_taken() -> bool:
            return sum(providers.accepted.values()) >= PEOPLE

        await wait_until(all_taken, within=60)
        first.send_signal(signal.SIGKILL)  # every first SMS taken, none answered
        first.wait(timeout=10)
        providers.stall = 0.0
        taken_before_kill = dict(providers.accepted)
        second = start_worker_process(
            dev_env, database, queue, tmp_path / "worker2.log", redis_server, settings
        )

        async def all_done() -> bool:
            runs = await store.enrollments(journey.id)
            return len(runs) == PEOPLE and all(e.status == "completed" for e in runs)

        await wait_until(all_done, within=90)
    finally:
        stop_processes(first, second)

    deliveries = await store.deliveries(journey_id=journey.id)
    # Every expected send has its row: reached the provider once, or logged unknown.
    assert sorted((d.profile_id, d.step_id) for d in deliveries) == sorted(
        (p.id, step) for p in people for step in ("first", "second")
    )
    # No SMS reached the provider twice: zero duplicates per idempotency key.
    assert max(providers.accepted.values()) == 1
    for delivery in deliveries:
        if delivery.status == "sent":
            assert providers.accepted[delivery.send_key] == 1
        else:
            assert (delivery.status, delivery.reason) == ("unknown", "interrupted")
            assert providers.accepted[delivery.send_key] <= 1
    # The first SMS of each person was in the window: unknown, not sent again; the run went on
    # and the second went out once.
    by_step = {(d.profile_id, d.step_id): d for d in deliveries}
    assert {by_step[(p.id, "first")].status for p in people} == {"unknown"}
    assert {by_step[(p.id, "second")].status for p in people} == {"sent"}
    assert taken_before_kill == {by_step[(p.id, "first")].send_key: 1 for p in people}

    # Shown to the marketer: `journey why` and the report's funnel.
    lines = await why(store, people[0].id, journey.id)
    assert "first sms (coupon): outcome unknown" in lines[0]
    assert "interrupted" in lines[0]
    report = await journey_report(store, journey)
    assert [(r.step, r.sent, r.unknown) for r in report.steps if r.step != "pause"] == [
        ("first", 0, PEOPLE),
        ("second", PEOPLE, 0),
    ]
    assert "unknown" in format_journey(report)
    await store.aclose()
