"""Provider quotas (WeCom's monthly group messages per customer) apply on top of the policy."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from connectors.wecom import QUOTA
from engine.caps.checker import CapChecker, CapRequest
from engine.caps.factory import build_cap_checker
from engine.caps.rules import ChannelQuota, applicable_rules
from engine.dsl.policy import Policy
from engine.settings import Settings
from tests.harness import RedisServer

pytestmark = pytest.mark.timeout(30)

SHANGHAI = ZoneInfo("Asia/Shanghai")
POLICY = "timezone: Asia/Shanghai\ncaps:\n  channels:\n    wecom: [{max: 4, per: 30d}]\n"


@pytest.fixture
async def checker(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[CapChecker]:
    """The cap checker a worker builds: the policy file plus the WeCom connector's quota."""
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    settings = Settings(redis_url=redis_server.url, journeys_dir=tmp_path)
    caps = build_cap_checker(settings, {"wecom": QUOTA})
    yield caps
    client: aioredis.Redis = caps._redis  # type: ignore[attr-defined]
    await client.aclose()


def wecom(person: str, at: datetime, timezone: str = "Asia/Shanghai") -> CapRequest:
    return CapRequest(
        send_key=f"{person}-{at.isoformat()}",
        profile_id=person,
        journey_id="monthly",
        channel="wecom",
        priority=50,
        at=at,
        timezone=timezone,
    )


async def test_a_policy_rule_for_wecom_does_not_lift_its_four_a_month_quota(
    checker: CapChecker,
) -> None:
    # policy.yaml allows 4 per rolling 30 days: 1 January leaves that window on 31 January,
    # but WeCom counts a calendar month and would silently drop a fifth January message.
    person = f"jan-{uuid.uuid4().hex[:8]}"
    days = [1, 8, 15, 22, 31]
    answers = [
        await checker.reserve(wecom(person, datetime(2027, 1, day, 10, tzinfo=SHANGHAI)))
        for day in days
    ]
    assert [a.allowed for a in answers] == [True, True, True, True, False]
    fifth = answers[-1]
    assert (fifth.rule, fifth.detail["count"]) == ("quota:wecom:4/month", "4")
    assert fifth.retry_at == datetime(2027, 2, 1, tzinfo=SHANGHAI)
    february = await checker.reserve(wecom(person, datetime(2027, 2, 1, 10, tzinfo=SHANGHAI)))
    assert february.allowed


async def test_the_month_is_wecoms_own_in_shanghai_not_the_recipients(
    checker: CapChecker,
) -> None:
    person = f"ny-{uuid.uuid4().hex[:8]}"
    new_york = "America/New_York"
    zone = ZoneInfo(new_york)
    for day in (1, 8, 15, 22):  # four January messages, mornings in New York
        at = datetime(2027, 1, day, 9, tzinfo=zone)
        assert (await checker.reserve(wecom(person, at, new_york))).allowed
    # 31 January 20:00 in New York is 1 February 09:00 in Shanghai: WeCom's February (and
    # 1 January 09:00 has left the policy's 30 days).
    evening = datetime(2027, 1, 31, 20, tzinfo=zone)
    assert (await checker.reserve(wecom(person, evening, new_york))).allowed
    # The policy's own rule still holds: a fifth touch within 30 days is refused by it.
    later = await checker.reserve(wecom(person, evening + timedelta(days=1), new_york))
    assert (later.allowed, later.rule) == (False, "channel:wecom:4/4w2d")


def test_the_stricter_of_policy_and_quota_refuses_so_both_are_checked() -> None:
    loose = Policy.model_validate({"caps": {"channels": {"wecom": [{"max": 10, "per": "1d"}]}}})
    quotas = {"wecom": ChannelQuota(max=4, period="month", timezone="Asia/Shanghai")}
    rules = applicable_rules(loose, "wecom", (), "j", (), quotas)
    assert [r.label for r in rules] == ["channel:wecom:10/1d", "quota:wecom:4/month"]
    assert {r.counter for r in rules} == {"c:wecom"}
    assert [r.label for r in applicable_rules(loose, "sms", (), "j", (), quotas)] == []
