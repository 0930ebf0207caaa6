"""The contact policy, end to end: journeys on the time-skipping server, caps in a real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from temporalio.testing import WorkflowEnvironment

from engine.caps.redis_caps import RedisCapService
from engine.dsl.policy import Policy
from engine.identity import identity
from engine.localtime import next_wall_time
from engine.services.why import why
from tests.harness import Harness, RedisServer, person, running_worker, sqlite_store

pytestmark = pytest.mark.timeout(120)

HELLO = {"hello": {"text": "{{ profile.first_name }}，你好", "subject": "你好"}}
SHANGHAI = ZoneInfo("Asia/Shanghai")


@asynccontextmanager
async def policed(
    env: WorkflowEnvironment, redis: RedisServer, directory: Path, **policy: Any
) -> AsyncIterator[Harness]:
    client = aioredis.Redis.from_url(redis.url, socket_connect_timeout=1, socket_timeout=2)
    caps = RedisCapService(client, Policy.model_validate(policy))
    store = await sqlite_store(directory)
    try:
        async with running_worker(env, store, directory, caps=caps) as harness:
            yield harness
    finally:
        await store.aclose()
        await client.aclose()


def one_send(journey_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": journey_id,
        "name": journey_id,
        "entry": {"api": True},
        "steps": [{"id": "remind", "send": {"channel": "sms", "template": "hello"}}],
        **extra,
    }


async def sleep_until(env: WorkflowEnvironment, target: datetime) -> None:
    """Advance the time-skipping clock to ``target`` (a negative sleep would jump years)."""
    ahead = target - await env.get_current_time()
    if ahead > timedelta(0):
        await env.sleep(ahead)


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def test_daily_journey_capped_once_a_week_reaches_each_person_on_days_0_and_7(
    time_skipping_env: WorkflowEnvironment, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = time_skipping_env
    jid = fresh("cart")
    policy = {"caps": {"global": [{"max": 1, "per": "1d"}]}, "on_capped": {"action": "skip"}}
    spec = one_send(jid, reentry={"policy": "always"}, caps=[{"max": 1, "per": "7d"}])
    people = [person(fresh("p"), phone="+86138") for _ in range(3)]
    async with policed(env, redis_server, tmp_path, **policy) as h:
        t0 = await env.get_current_time()
        version = await h.deploy(spec, HELLO, t0)
        await h.store.upsert_profiles(people)
        for day in range(14):
            # The segment runs daily; each day a minute later, so "7 days after the first
            # message" is unambiguous whatever the milliseconds of processing.
            target = t0 + timedelta(days=day, minutes=day)
            await sleep_until(env, target)
            report = await h.enroller.enroll(version, [p.id for p in people], target)
            assert report["started"] == len(people)
            for p in people:
                await h.result(jid, p.id, skip_time=False)

        for p in people:
            rows = [d for d in await h.store.deliveries(profile_id=p.id) if d.journey_id == jid]
            sent_days = sorted((d.created_at - t0).days for d in rows if d.status == "sent")
            assert sent_days == [0, 7]
            refused = {d.reason for d in rows if d.status == "suppressed"}
            assert refused == {f"journey:{jid}:1/1w"}
            assert len(rows) == 14


@pytest.mark.parametrize("action", ["defer", "drop"])
async def test_quiet_hours_hold_a_late_send_until_nine_in_the_persons_timezone(
    time_skipping_env: WorkflowEnvironment, redis_server: RedisServer, tmp_path: Path, action: str
) -> None:
    env = time_skipping_env
    jid = fresh("late")
    quiet = {"quiet_hours": {"from": "21:00", "to": "09:00", "action": action}}
    shanghai = person(fresh("sh"), phone="+86138")
    new_york = person(fresh("ny"), phone="+1212", timezone="America/New_York")
    async with policed(env, redis_server, tmp_path, **quiet) as h:
        night = next_wall_time(await env.get_current_time(), time(23, 30), SHANGHAI)
        await sleep_until(env, night)
        version = await h.deploy(one_send(jid), HELLO, night)
        await h.store.upsert_profiles([shanghai, new_york])
        await h.enroller.enroll(version, [shanghai.id, new_york.id], night)
        for p in (shanghai, new_york):
            await h.result(jid, p.id)

        ny_rows = await h.store.deliveries(profile_id=new_york.id)
        assert [(d.status, d.created_at - night < timedelta(minutes=1)) for d in ny_rows] == [
            ("sent", True)
        ]
        sh_rows = sorted(
            await h.store.deliveries(profile_id=shanghai.id), key=lambda d: d.created_at
        )
        if action == "defer":
            assert [(d.status, d.reason) for d in sh_rows] == [
                ("deferred", "quiet_hours"),
                ("sent", None),
            ]
            nine = next_wall_time(night, time(9), SHANGHAI)
            assert abs(sh_rows[1].created_at - nine) < timedelta(minutes=1)
        else:
            assert [(d.status, d.reason) for d in sh_rows] == [("suppressed", "quiet_hours")]
        assert [line["to"] for line in h.sent_lines()].count("+86138") == (action == "defer")


async def test_three_journeys_want_one_person_only_the_highest_priority_sends(
    time_skipping_env: WorkflowEnvironment, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = time_skipping_env
    ids = {priority: fresh(f"j{priority}") for priority in (10, 50, 90)}
    target = person(fresh("p"), phone="+86138")
    async with policed(env, redis_server, tmp_path, arbitration={"window": "10m"}) as h:
        now = await env.get_current_time()
        await h.store.upsert_profiles([target])
        for priority, jid in ids.items():
            version = await h.deploy(one_send(jid, priority=priority), HELLO, now)
            await h.enroller.enroll(version, [target.id], now)
        for jid in ids.values():
            await h.result(jid, target.id)

        rows = {
            d.journey_id: (d.status, d.reason)
            for d in await h.store.deliveries(profile_id=target.id)
        }
        assert rows == {
            ids[90]: ("sent", None),
            ids[50]: ("suppressed", f"arbitration_lost:{ids[90]}"),
            ids[10]: ("suppressed", f"arbitration_lost:{ids[90]}"),
        }
        assert len(h.sent_lines()) == 1


async def test_redis_down_means_no_sends_until_it_is_back_and_no_cap_is_exceeded(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    # Real time on purpose: the time-skipping server jumps years ahead to fire a pending
    # activity retry, which would (rightly) expire the one-day cap window.
    env = dev_env
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    first, second = fresh("first"), fresh("second")
    people = [person(fresh("p"), phone=f"+86{i}") for i in range(4)]
    policy = {"caps": {"global": [{"max": 1, "per": "1d"}]}, "on_capped": {"action": "skip"}}
    try:
        async with policed(env, redis, tmp_path / "run", **policy) as h:
            now = await env.get_current_time()
            await h.store.upsert_profiles(people)
            v1 = await h.deploy(one_send(first), HELLO, now)
            await h.enroller.enroll(v1, [p.id for p in people[:2]], now)
            for p in people[:2]:
                await h.result(first, p.id)
            assert len(h.sent_lines()) == 2

            redis.stop()
            await h.enroller.enroll(v1, [p.id for p in people[2:]], now)
            v2 = await h.deploy(one_send(second), HELLO, now)
            await h.enroller.enroll(v2, [p.id for p in people], now)
            await asyncio.sleep(3)  # the send activities fail and are retried meanwhile
            assert len(h.sent_lines()) == 2
            assert len(await h.store.deliveries(journey_id=second)) == 0

            redis.start()
            for p in people[2:]:
                await h.result(first, p.id)
            for p in people:
                await h.result(second, p.id)

            # Everyone got exactly one message: the counters survived the restart.
            sent = [line["metadata"]["profile_id"] for line in h.sent_lines()]
            assert sorted(sent) == sorted(p.id for p in people)
            # Whichever journey reserved first won each person's daily slot; the rest were refused.
            rows = await h.store.deliveries()
            assert sum(d.status == "sent" for d in rows) == len(people)
            assert {(d.status, d.reason) for d in rows if d.status != "sent"} == {
                ("suppressed", "global:1/1d")
            }
            assert len(rows) == 2 * len(people)
    finally:
        redis.stop()


async def test_two_ids_of_one_person_merged_mid_run_get_one_message_a_day(
    time_skipping_env: WorkflowEnvironment, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = time_skipping_env
    app_journey, shop_journey = fresh("welcome"), fresh("offer")
    policy = {"caps": {"global": [{"max": 1, "per": "1d"}]}, "on_capped": {"action": "skip"}}
    phone = f"+86139{uuid.uuid4().int % 10**8:08d}"
    async with policed(env, redis_server, tmp_path, **policy) as h:
        t0 = await env.get_current_time()
        # The same person, known twice: the app account (older: the merge's survivor) and a
        # shop account made yesterday.
        app = await h.store.identify(
            [identity("email", f"{fresh('li')}@example.com")],
            attributes={"first_name": "磊", "phone": phone},
            at=t0 - timedelta(days=30),
        )
        shop = await h.store.identify(
            [identity("phone", phone)],
            attributes={"first_name": "磊", "phone": phone},
            at=t0 - timedelta(days=1),
        )
        hello = {"id": "hello", "send": {"channel": "sms", "template": "hello"}}
        welcome = {
            "id": app_journey,
            "name": "welcome",
            "entry": {"api": True},
            "steps": [hello, {"id": "later", "wait": "3h"}, {**hello, "id": "again"}],
        }
        offer = {
            "id": shop_journey,
            "name": "offer",
            "entry": {"api": True},
            "steps": [{"id": "pause", "wait": "2h"}, hello],
        }
        # The shop id's run sends at once; the app id's run two hours later.
        await h.enroller.enroll(await h.deploy(welcome, HELLO, t0), [shop.profile_id], t0)
        await h.enroller.enroll(await h.deploy(offer, HELLO, t0), [app.profile_id], t0)
        await h.until_step(app_journey, shop.profile_id, "later")
        await h.until_step(shop_journey, app.profile_id, "pause")
        assert len(h.sent_lines()) == 1

        # Then a login links the two accounts: one person from now on.
        merged = await h.store.identify(
            [identity("email", f"{fresh('li')}@example.com"), identity("phone", phone)],
            profile_id=app.profile_id,
        )
        assert merged.merged == (shop.profile_id,)
        await h.result(shop_journey, app.profile_id)
        await h.result(app_journey, shop.profile_id)

        # One message that day at the connector: the shop id's touch counted for the survivor.
        assert [line["to"] for line in h.sent_lines()] == [phone]
        refused = [d for d in await h.store.deliveries() if d.status != "sent"]
        assert [(d.status, d.reason) for d in refused] == [("suppressed", "global:1/1d")] * 2


async def test_quiet_hours_of_a_merged_run_are_the_survivors(
    time_skipping_env: WorkflowEnvironment, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = time_skipping_env
    jid = fresh("night")
    quiet = {"quiet_hours": {"from": "21:00", "to": "09:00", "action": "drop"}}
    phone = f"+1212{2_000_000 + uuid.uuid4().int % 7_999_999:07d}"  # a valid New York number
    async with policed(env, redis_server, tmp_path, **quiet) as h:
        now = (await env.get_current_time()).astimezone(SHANGHAI)
        evening = now.replace(hour=23, minute=0, second=0, microsecond=0)
        if evening <= now:
            evening += timedelta(days=1)
        await sleep_until(env, evening)
        # The person lives in New York (their app account says so); a shop account made in
        # Shanghai started the run, so the run's own timezone is Shanghai's.
        app = await h.store.identify(
            [identity("email", f"{fresh('ny')}@example.com")],
            attributes={"first_name": "Lei", "phone": phone},
            timezone="America/New_York",
            at=evening - timedelta(days=30),
        )
        shop = await h.store.identify(
            [identity("phone", phone)], attributes={"first_name": "Lei", "phone": phone}
        )
        spec = {
            "id": jid,
            "name": jid,
            "entry": {"api": True},
            "steps": [
                {"id": "pause", "wait": "1h"},
                {"id": "hello", "send": {"channel": "sms", "template": "hello"}},
            ],
        }
        await h.enroller.enroll(await h.deploy(spec, HELLO, evening), [shop.profile_id], evening)
        await h.until_step(jid, shop.profile_id, "pause")
        await h.store.identify([identity("phone", phone)], profile_id=app.profile_id)
        await h.result(jid, shop.profile_id)

        # Midnight in Shanghai is 11:00 in New York: the person's day, so the message went.
        [row] = await h.store.deliveries(journey_id=jid)
        assert row.status == "sent"
        assert [line["to"] for line in h.sent_lines()] == [phone]


async def test_a_journey_past_its_budget_suppresses_the_send_and_why_says_so(
    time_skipping_env: WorkflowEnvironment, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = time_skipping_env
    jid = fresh("coupon")
    spec = one_send(jid, budget={"max_sends": 5, "max_value": 40})
    spec["steps"][0]["send"]["value"] = 20
    people = [person(fresh("p"), phone="+86138") for _ in range(3)]
    async with policed(env, redis_server, tmp_path) as h:
        t0 = await env.get_current_time()
        version = await h.deploy(spec, HELLO, t0)
        await h.store.upsert_profiles(people)
        await h.enroller.enroll(version, [p.id for p in people], t0)
        rows = []
        for p in people:
            await h.result(jid, p.id)
            rows += [d for d in await h.store.deliveries(profile_id=p.id) if d.journey_id == jid]
        assert sorted(d.status for d in rows) == ["sent", "sent", "suppressed"]
        [refused] = [d for d in rows if d.status == "suppressed"]
        assert refused.reason == "budget_exhausted"
        lines = await why(h.store, refused.profile_id, jid)
        said = f"not sent — budget_exhausted (40 of 40 value used) in the budget of journey:{jid}"
        assert any(said in line for line in lines), lines
