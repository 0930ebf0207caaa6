"""Quiet hours and calendar windows across daylight-saving changes, on a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from tests.caps.test_decisions import request, service, someone
from tests.harness import RedisServer

pytestmark = pytest.mark.timeout(30)

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


async def test_quiet_hours_ending_in_the_repeated_hour_end_at_the_next_showing(
    client: aioredis.Redis,
) -> None:
    caps = service(client, quiet_hours={"from": "21:00", "to": "01:30", "action": "defer"})
    # 01:10 on the fall-back night, the second time the clock shows it (EST): the clock shows
    # 01:30 again twenty minutes later. The first 01:30 (EDT) is already an hour past.
    at = datetime(2027, 11, 7, 1, 10, tzinfo=NEW_YORK, fold=1)
    decision = await caps.reserve(request(someone(), at, timezone="America/New_York"))
    assert (decision.action, decision.rule) == ("defer", "quiet_hours")
    assert decision.retry_at == datetime(2027, 11, 7, 6, 30, tzinfo=UTC)
    assert decision.retry_at - at == timedelta(minutes=20)


async def test_quiet_hours_across_spring_forward_end_at_nine_local(
    client: aioredis.Redis,
) -> None:
    caps = service(client, quiet_hours={"from": "21:00", "to": "09:00", "action": "defer"})
    at = datetime(2027, 3, 13, 23, 0, tzinfo=NEW_YORK)
    decision = await caps.reserve(request(someone(), at, timezone="America/New_York"))
    assert decision.retry_at == datetime(2027, 3, 14, 13, 0, tzinfo=UTC)  # 09:00 EDT
    assert decision.retry_at - at == timedelta(hours=9)  # ten hours on the wall clock


async def test_a_calendar_day_across_fall_back_is_twenty_five_hours(
    client: aioredis.Redis,
) -> None:
    caps = service(client, window="calendar", caps={"global": [{"max": 1, "per": "1d"}]})
    person = someone()
    morning = datetime(2027, 11, 7, 0, 30, tzinfo=NEW_YORK)
    assert (await caps.reserve(request(person, morning, timezone="America/New_York"))).allowed
    refused = await caps.reserve(
        request(person, morning + timedelta(hours=23), timezone="America/New_York")
    )
    assert refused.retry_at == datetime(2027, 11, 8, 5, 0, tzinfo=UTC)  # midnight EST
