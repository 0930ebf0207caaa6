"""Pause, resume and stop with runs in flight, on a real Temporal server with real workers: what
an operator relies on is counted at the connector and read from the ledger."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from temporalio.testing import WorkflowEnvironment

from engine.caps.redis_caps import RedisCapService
from engine.domain import Event
from engine.dsl.policy import Policy
from engine.services.lifecycle import JourneyLifecycle
from engine.services.why import why
from engine.workflow.messages import RunResult
from tests.harness import RedisServer, person, running_worker, sqlite_store

pytestmark = pytest.mark.timeout(600)
N = 1000

HELLO = {"hello": {"text": "{{ profile.first_name }}，你好"}}


def wait_then_send(journey_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": journey_id,
        "name": journey_id,
        "entry": {"api": True},
        "steps": [
            {"id": "soon", "wait": "1h"},
            {"id": "remind", "send": {"channel": "sms", "template": "hello"}},
        ],
        **extra,
    }


async def test_a_thousand_paused_runs_send_nothing_until_resumed_even_across_a_worker_restart(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    # The dev server (real Temporal): a restarted worker on the same task queue takes the runs
    # over, which the time-skipping server does not do for queries.
    env = dev_env
    people = [person(f"lc{i:04d}", phone=f"+86138{i:08d}") for i in range(N)]
    journey = {
        "id": "flash-sale",
        "name": "flash sale",
        "entry": {"api": True},
        "steps": [
            {"id": "ready", "wait_for": {"event": "browsed", "timeout": "30d"}},
            {"id": "remind", "send": {"channel": "sms", "template": "hello"}},
        ],
    }
    store = await sqlite_store(tmp_path)
    try:
        async with running_worker(env, store, tmp_path) as h:
            t0 = await env.get_current_time()
            version = await h.deploy(journey, HELLO, t0)
            await store.upsert_profiles(people)
            assert (await h.enroller.enroll(version, [p.id for p in people], t0))["started"] == N
            for p in people:  # every run is waiting (an event before its wait began is not news)
                await h.until_step("flash-sale", p.id, "ready", within=120)
            lifecycle = JourneyLifecycle(store, h.client)
            paused = await lifecycle.pause("flash-sale", "ops@brand", t0, "wrong coupon")
            assert (paused.previous, paused.control.state, paused.signalled) == (
                "active",
                "paused",
                N,
            )
            # Every run's wait ends now: each goes on to its send, and holds there.
            browsed = [Event(f"b-{p.id}", p.id, "browsed", t0) for p in people]
            await h.router.ingest_batch(browsed, t0)
            for p in people:
                await h.until_step("flash-sale", p.id, "remind", within=120)
            queue, outbox = h.task_queue, h.outbox

        # A new worker (the old one is gone, its cache with it): the runs are still held.
        async with running_worker(env, store, tmp_path, task_queue=queue, outbox=outbox) as h2:
            for p in people[:: N // 10]:
                state = await h2.until_step("flash-sale", p.id, "remind", within=120)
                assert state.paused
                described = await h2.handle("flash-sale", p.id).describe()
                assert described.search_attributes.get("JourneyStep") == ["paused"]
            await asyncio.sleep(1)
            assert h2.sent_lines() == []
            assert await store.deliveries(journey_id="flash-sale") == []

            # Entries are refused while paused, and the refusal is explained.
            late = person("lc-late", phone="+8613900000000")
            await store.upsert_profiles([late])
            report = await h2.enroller.enroll(version, [late.id], await env.get_current_time())
            assert report.outcomes == {late.id: "journey_paused"}
            explained = await why(store, late.id)
            assert explained[-1].endswith("flash-sale: not entered — journey paused")

            now = await env.get_current_time()
            resumed = await lifecycle.resume("flash-sale", "ops@brand", now)
            assert (resumed.control.state, resumed.signalled) == ("active", N)
            results = await asyncio.gather(*(h2.result("flash-sale", p.id) for p in people))
            assert {r.status for r in results} == {"completed"}
            sent = [line["metadata"]["profile_id"] for line in h2.sent_lines()]
            assert sorted(sent) == sorted(p.id for p in people)  # each exactly once
            ledger = await store.enrollments("flash-sale")
            assert {e.status for e in ledger} == {"completed"} and len(ledger) == N
            history = await store.control_history("flash-sale")
            assert [(c.state, c.changed_by, c.reason) for c in history] == [
                ("paused", "ops@brand", "wrong coupon"),
                ("active", "ops@brand", None),
            ]
    finally:
        await store.aclose()


async def test_stop_ends_every_live_run_at_once_and_nothing_more_is_sent(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    env = time_skipping_env
    people = [person(f"st{i}", phone=f"+8613{i:09d}") for i in range(5)]
    store = await sqlite_store(tmp_path)
    try:
        async with running_worker(env, store, tmp_path) as h:
            t0 = await env.get_current_time()
            version = await h.deploy(wait_then_send("stopped-one"), HELLO, t0)
            await store.upsert_profiles(people)
            await h.enroller.enroll(version, [p.id for p in people], t0)
            for p in people:
                await h.until_step("stopped-one", p.id, "soon")
            result = await JourneyLifecycle(store, h.client).stop(
                "stopped-one", "ops@brand", t0, "campaign cancelled"
            )
            assert (result.control.state, result.signalled) == ("stopped", 5)
            ends = [await h.result("stopped-one", p.id) for p in people]
            assert {(r.status, r.reason) for r in ends} == {("stopped", "campaign cancelled")}
            await env.sleep(timedelta(hours=3))
            assert h.sent_lines() == []
            assert {e.status for e in await store.enrollments("stopped-one")} == {"stopped"}
            again = await h.enroller.enroll(version, [people[0].id], await env.get_current_time())
            assert again.outcomes == {people[0].id: "journey_stopped"}
    finally:
        await store.aclose()


async def test_a_held_send_whose_deferral_expired_is_logged_expired_not_sent_late(
    time_skipping_env: WorkflowEnvironment, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = time_skipping_env
    policy = Policy.model_validate(
        {
            "caps": {"global": [{"max": 1, "per": "1d"}]},
            "on_capped": {"action": "defer", "expire_after": "30h"},
        }
    )
    redis = aioredis.Redis.from_url(redis_server.url)
    await redis.flushdb()
    store = await sqlite_store(tmp_path)
    target = person("held-1", phone="+8613800000001")
    try:
        async with running_worker(env, store, tmp_path, caps=RedisCapService(redis, policy)) as h:
            t0 = await env.get_current_time()
            first = await h.deploy(
                {
                    "id": "first-touch",
                    "name": "first",
                    "entry": {"api": True},
                    "steps": [{"id": "now", "send": {"channel": "sms", "template": "hello"}}],
                },
                HELLO,
                t0,
            )
            later = await h.deploy(wait_then_send("later-touch"), HELLO, t0)
            await store.upsert_profiles([target])
            await h.enroller.enroll(first, [target.id], t0)
            await h.result("first-touch", target.id, skip_time=False)
            await h.enroller.enroll(later, [target.id], await env.get_current_time())
            # At +1h the daily cap refuses; the send is deferred to +1d (within its 30h).
            await env.sleep(timedelta(hours=1, minutes=5))
            rows = await store.deliveries(journey_id="later-touch")
            assert [(d.status, d.reason) for d in rows] == [("deferred", "global:1/1d")]
            lifecycle = JourneyLifecycle(store, h.client)
            await lifecycle.pause("later-touch", "ops", await env.get_current_time())
            await env.sleep(timedelta(days=3))  # the deferral's slot came and went, held
            await lifecycle.resume("later-touch", "ops", await env.get_current_time())
            end: RunResult = await h.result("later-touch", target.id)
            assert end.status == "completed"
            rows = await store.deliveries(journey_id="later-touch")
            assert sorted((d.status, d.reason) for d in rows) == [
                ("deferred", "global:1/1d"),
                ("expired", "held_past_expiry"),
            ]
            assert len(h.sent_lines()) == 1  # the first journey's touch only
    finally:
        await store.aclose()
        await redis.aclose()
