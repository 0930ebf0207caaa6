"""Journey runs on the real time-skipping Temporal server: long waits take milliseconds."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from engine.domain import Event
from engine.unsubscribe import read_token, unsubscribe_url
from engine.workflow.messages import EventSignal
from tests.harness import Harness, person, running_worker, sqlite_store, start_time_skipping

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of each test's own (about 0.2 s to start): these tests sleep the
    clock forward, which a run another test left mid-activity on a shared server can hold up
    past the RPC's deadline (seen once under load)."""
    env = await start_time_skipping()
    yield env
    await env.shutdown()
    await asyncio.sleep(0.05)  # sdk-python#300: let the runtime settle before the next one


HELLO = {"hello": {"text": "{{ profile.first_name }}，你好", "subject": "你好"}}


def journey(steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    # A fresh id per test: runs share one server, and ids are unique per (journey, person).
    return {
        "id": f"j-{uuid.uuid4().hex[:8]}",
        "name": "test journey",
        "entry": {"api": True},
        "steps": steps,
        **extra,
    }


async def enter(h: Harness, env: WorkflowEnvironment, spec: dict[str, Any], *people: Any) -> Any:
    now = await env.get_current_time()
    version = await h.deploy(spec, HELLO, now)
    await h.store.upsert_profiles(list(people))
    report = await h.enroller.enroll(version, [p.id for p in people], now)
    assert report["started"] == len(people)
    return version


async def test_seven_day_wait_runs_in_seconds_and_sends_once(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    spec = journey(
        [
            {"id": "pause", "wait": "7d"},
            {"id": "hi", "send": {"channel": "sms", "template": "hello"}},
            {"id": "done", "exit": {}},
        ]
    )
    start = await time_skipping_env.get_current_time()
    await enter(harness, time_skipping_env, spec, person("p1", phone="+8613800000001"))

    result = await harness.result(spec["id"], "p1")

    assert result.status == "completed"
    assert result.path == ["pause", "hi", "done"]
    assert await time_skipping_env.get_current_time() - start >= timedelta(days=7)
    [line] = harness.sent_lines()
    assert line["content"]["text"] == "小明，你好"
    assert line["to"] == "+8613800000001"
    [delivery] = await harness.store.deliveries(journey_id=spec["id"])
    assert (delivery.status, delivery.step_id) == ("sent", "hi")
    enrollment = await harness.store.last_enrollment(spec["id"], "p1")
    assert enrollment is not None and enrollment.status == "completed"
    assert enrollment.exit_step == "done"


async def test_goal_event_mid_wait_ends_the_run_at_once(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    spec = journey(
        [
            {"id": "pause", "wait": "7d"},
            {"id": "hi", "send": {"channel": "sms", "template": "hello"}},
        ],
        goal={"event": "order_paid", "within": "7d"},
    )
    await enter(harness, time_skipping_env, spec, person("p1", phone="+86138"))
    await time_skipping_env.sleep(timedelta(days=1))
    signalled_at = await time_skipping_env.get_current_time()
    await harness.router.ingest(
        Event(uuid.uuid4().hex, "p1", "order_paid", signalled_at, {"amount": 99}), signalled_at
    )

    result = await harness.result(spec["id"], "p1")

    assert result.status == "converted"
    assert result.exit_step == "pause"
    enrollment = await harness.store.last_enrollment(spec["id"], "p1")
    assert enrollment is not None and enrollment.ended_at is not None
    assert enrollment.ended_at - signalled_at < timedelta(hours=1)
    assert harness.sent_lines() == []


@pytest.mark.parametrize(("purchase", "expected_path"), [(True, "thanks"), (False, "nudge")])
async def test_wait_for_takes_event_or_timeout_exit(
    harness: Harness, time_skipping_env: WorkflowEnvironment, purchase: bool, expected_path: str
) -> None:
    spec = journey(
        [
            {
                "id": "wait_pay",
                "wait_for": {
                    "event": "order_paid",
                    "timeout": "2d",
                    "on_event": "thanks",
                    "on_timeout": "nudge",
                },
            },
            {"id": "nudge", "send": {"channel": "sms", "template": "hello", "next": "done"}},
            {"id": "thanks", "exit": {}},
            {"id": "done", "exit": {}},
        ]
    )
    await enter(harness, time_skipping_env, spec, person("p1", phone="+86138"))
    if purchase:
        await time_skipping_env.sleep(timedelta(hours=5))
        now = await time_skipping_env.get_current_time()
        await harness.router.ingest(Event("e1", "p1", "order_paid", now), now)

    result = await harness.result(spec["id"], "p1")

    assert result.status == "completed"
    assert result.path[1] == expected_path
    assert len(harness.sent_lines()) == (0 if purchase else 1)


async def test_branch_sends_each_person_down_their_path(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    spec = journey(
        [
            {
                "id": "value",
                "branch": [
                    {"when": {"attribute": "cart_value", "gte": 200}, "goto": "vip"},
                    {"when": {"tag": "fruit_lover"}, "goto": "fruit"},
                    {"else": "plain"},
                ],
            },
            {"id": "vip", "exit": {}},
            {"id": "fruit", "exit": {}},
            {"id": "plain", "exit": {}},
        ]
    )
    people = [
        person("rich", cart_value=300),
        person("fan", cart_value=50, tags=["fruit_lover"]),
        person("other", cart_value=50),
        person("nocart"),
    ]
    await enter(harness, time_skipping_env, spec, *people)
    ends = {p.id: (await harness.result(spec["id"], p.id)).exit_step for p in people}
    assert ends == {"rich": "vip", "fan": "fruit", "other": "plain", "nocart": "plain"}


async def test_update_step_changes_the_stored_profile(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    spec = journey(
        [
            {
                "id": "mark",
                "update": {"attributes": {"stage": "nurtured"}, "add_tags": ["touched"]},
            },
            {"id": "done", "exit": {}},
        ]
    )
    await enter(harness, time_skipping_env, spec, person("p1"))
    await harness.result(spec["id"], "p1")
    profile = await harness.store.get_profile("p1")
    assert profile is not None
    assert profile.attributes["stage"] == "nurtured" and "touched" in profile.tags


async def test_redeploy_does_not_change_a_run_in_flight(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    v1 = journey(
        [
            {"id": "pause", "wait": "3d"},
            {"id": "old", "send": {"channel": "sms", "template": "hello"}},
        ]
    )
    v2 = {
        **v1,
        "steps": [{"id": "pause", "wait": "3d"}, {"id": "new", "exit": {"reason": "v2 is quiet"}}],
    }
    first = await enter(harness, time_skipping_env, v1, person("early", phone="+1"))
    await time_skipping_env.sleep(timedelta(days=1))
    second = await enter(harness, time_skipping_env, v2, person("late", phone="+2"))
    assert (first.version, second.version) == (1, 2)

    early = await harness.result(v1["id"], "early")
    late = await harness.result(v1["id"], "late")

    assert early.path == ["pause", "old"]
    assert late.path == ["pause", "new"]
    assert [line["metadata"]["profile_id"] for line in harness.sent_lines()] == ["early"]


async def test_reentry_rules_come_from_the_ledger(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    spec = journey([{"id": "done", "exit": {}}], reentry={"policy": "after", "cooldown": "7d"})
    version = await enter(harness, time_skipping_env, spec, person("p1"))
    await harness.result(spec["id"], "p1")

    soon = await time_skipping_env.get_current_time() + timedelta(days=2)
    later = soon + timedelta(days=6)
    assert (await harness.enroller.enroll(version, ["p1"], soon))["reentry_blocked"] == 1
    assert (await harness.enroller.enroll(version, ["p1"], later))["started"] == 1


async def test_a_person_unsubscribed_from_sms_gets_no_sms_but_still_gets_email(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    spec = journey(
        [
            {"id": "pause", "wait": "1d"},
            {"id": "by_sms", "send": {"channel": "sms", "template": "hello"}},
            {"id": "by_email", "send": {"channel": "email", "template": "hello"}},
        ]
    )
    await enter(harness, time_skipping_env, spec, person("p1", phone="+86", email="a@example.com"))
    await time_skipping_env.sleep(timedelta(hours=1))  # mid-journey: inside the 1-day wait
    at = await time_skipping_env.get_current_time()
    await harness.store.set_subscription("p1", "sms", "unsubscribed", "unsubscribe_link", at)

    await harness.result(spec["id"], "p1")

    rows = {
        d.step_id: (d.status, d.reason)
        for d in await harness.store.deliveries(journey_id=spec["id"])
    }
    assert rows == {"by_sms": ("suppressed", "unsubscribed:sms"), "by_email": ("sent", None)}
    assert [line["channel"] for line in harness.sent_lines()] == ["email"]


async def test_marketing_messages_carry_a_signed_unsubscribe_link_transactional_ones_do_not(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    store = await sqlite_store(tmp_path)
    link = functools.partial(unsubscribe_url, "https://brand.example", "secret")
    async with running_worker(time_skipping_env, store, tmp_path, unsubscribe_link=link) as h:
        spec = journey(
            [
                {"id": "promo", "send": {"channel": "sms", "template": "hello"}},
                {
                    "id": "receipt",
                    "send": {"channel": "sms", "template": "hello", "category": "transactional"},
                },
            ]
        )
        await enter(h, time_skipping_env, spec, person("p1", phone="+86"))
        await h.result(spec["id"], "p1", skip_time=False)
        promo, receipt = h.sent_lines()
    await store.aclose()
    url = promo["metadata"]["unsubscribe_url"]
    assert url.startswith("https://brand.example/u/")
    assert read_token("secret", url.rsplit("/", 1)[1]) == ("p1", "sms")
    assert "unsubscribe_url" not in receipt["metadata"]


async def test_an_event_delivered_twice_counts_once(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    spec = journey(
        [
            {"id": "first", "wait_for": {"event": "paid", "timeout": "1d", "on_event": "second"}},
            {
                "id": "second",
                "wait_for": {
                    "event": "paid",
                    "timeout": "1d",
                    "on_event": "two_orders",
                    "on_timeout": "one_order",
                },
            },
            {"id": "two_orders", "exit": {}},
            {"id": "one_order", "exit": {}},
        ]
    )
    await enter(harness, time_skipping_env, spec, person("p1"))
    await time_skipping_env.sleep(timedelta(hours=1))
    now = await time_skipping_env.get_current_time()
    signal = EventSignal(name="paid", event_id="order-1", occurred_at=now)
    handle = harness.handle(spec["id"], "p1")
    await handle.signal("event", signal)
    await handle.signal("event", signal)  # at-least-once delivery: the same event again

    result = await harness.result(spec["id"], "p1")
    assert result.exit_step == "one_order"
