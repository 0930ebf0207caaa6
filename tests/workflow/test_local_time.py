"""`wait: {until}` lands at that time on the person's clock: across daylight-saving changes, and
on the run's own clock when waits are scaled. Real time-skipping Temporal server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.harness import Harness, person, running_worker, sqlite_store

pytestmark = pytest.mark.timeout(60)

NEW_YORK = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")
HELLO = {"hello": {"text": "hi"}}


def morning_send(until: str, *before: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"j-{uuid.uuid4().hex[:8]}",
        "name": "morning send",
        "entry": {"api": True},
        "steps": [
            *before,
            {"id": "morning", "wait": {"until": until}},
            {"id": "hi", "send": {"channel": "sms", "template": "hello"}},
            {"id": "done", "exit": {}},
        ],
    }


def next_change(after: datetime, zone: ZoneInfo, forward: bool) -> date:
    """The next local day on which the zone's clocks go forward (or back)."""
    day = after.astimezone(zone).date() + timedelta(days=1)
    for _ in range(800):
        noon, next_noon = (
            datetime.combine(d, time(12), zone).utcoffset() for d in (day, day + timedelta(days=1))
        )
        assert noon is not None and next_noon is not None
        if (next_noon > noon) if forward else (next_noon < noon):
            return day + timedelta(days=1)
        day += timedelta(days=1)
    raise AssertionError("no daylight-saving change found")


async def sleep_until(env: WorkflowEnvironment, target: datetime) -> None:
    ahead = target - await env.get_current_time()
    if ahead > timedelta(0):
        await env.sleep(ahead)


async def sent_at(h: Harness, spec: dict[str, Any], profile_id: str) -> datetime:
    result = await h.result(spec["id"], profile_id)
    assert result.status == "completed"
    [delivery] = await h.store.deliveries(journey_id=spec["id"])
    assert delivery.status == "sent"
    return delivery.created_at


@pytest.mark.parametrize("forward", [True, False], ids=["spring_forward", "fall_back"])
async def test_wait_until_ten_across_a_clock_change_sends_at_ten_local(
    harness: Harness, time_skipping_env: WorkflowEnvironment, forward: bool
) -> None:
    env = time_skipping_env
    change = next_change(await env.get_current_time(), NEW_YORK, forward)
    evening = datetime.combine(change - timedelta(days=1), time(20), NEW_YORK)
    await sleep_until(env, evening)
    spec = morning_send("10:00")
    version = await harness.deploy(spec, HELLO, evening)
    await harness.store.upsert_profiles([person("ny", phone="+1212", timezone="America/New_York")])
    await harness.enroller.enroll(version, ["ny"], await env.get_current_time())

    at = await sent_at(harness, spec, "ny")

    ten = datetime.combine(change, time(10), NEW_YORK)
    # 14:00 UTC after spring-forward, 15:00 after fall-back; the old wall-clock arithmetic was
    # an hour late (11:00 local) in spring and an hour early (09:00) in autumn.
    assert ten.astimezone(UTC).hour == (14 if forward else 15)
    assert abs(at - ten) < timedelta(minutes=1), at.astimezone(NEW_YORK)


@pytest.fixture
async def scaled(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Harness]:
    store = await sqlite_store(tmp_path)
    # One simulated day per real hour, as a rehearsal or the demo (one per second) does.
    async with running_worker(time_skipping_env, store, tmp_path, time_scale=24) as h:
        yield h
    await store.aclose()


async def test_a_scaled_run_waits_until_ten_on_its_own_clock(
    scaled: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    env = time_skipping_env
    spec = morning_send("10:00", {"id": "pause", "wait": "1d"})
    entered = await env.get_current_time()
    version = await scaled.deploy(spec, HELLO, entered)
    await scaled.store.upsert_profiles([person("sh", phone="+86138")])
    await scaled.enroller.enroll(version, ["sh"], entered)

    at = await sent_at(scaled, spec, "sh")  # the run's clock: the send's recorded time

    # After the simulated day's pause the run's clock reads entry + 1 day; the next 10:00 in
    # Shanghai after that. Workflow time is only an hour past entry, which the old code used.
    day_later = (entered + timedelta(days=1)).astimezone(SHANGHAI)
    ten = day_later.replace(hour=10, minute=0, second=0, microsecond=0)
    if ten <= day_later:
        ten += timedelta(days=1)
    assert abs(at - ten) < timedelta(minutes=1), at.astimezone(SHANGHAI)
    assert await env.get_current_time() - entered < timedelta(days=2)  # it ran scaled
