"""Provider quotas (WeCom's monthly group messages per customer) become channel caps."""

from __future__ import annotations

from datetime import timedelta

from connectors.base import ProviderQuota
from connectors.wecom import QUOTA
from engine.caps.factory import with_provider_quotas
from engine.dsl.policy import Policy


def test_a_provider_quota_becomes_a_channel_cap_that_holds_for_every_calendar_month() -> None:
    policy = with_provider_quotas(Policy(), {"wecom": QUOTA})
    [rule] = policy.caps.channels["wecom"]
    assert (rule.max, rule.per) == (QUOTA.max, timedelta(days=31))


def test_the_policy_wins_where_it_already_caps_the_channel() -> None:
    policy = Policy.model_validate({"caps": {"channels": {"wecom": [{"max": 2, "per": "30d"}]}}})
    quota = ProviderQuota(max=4, window="month", kind="group_message")
    merged = with_provider_quotas(policy, {"wecom": quota, "push": quota})
    assert [(r.max, r.per.days) for r in merged.caps.channels["wecom"]] == [(2, 30)]
    assert [(r.max, r.per.days) for r in merged.caps.channels["push"]] == [(4, 31)]
