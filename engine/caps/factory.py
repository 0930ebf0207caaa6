"""Choosing the cap checker a worker uses (the one place that knows the implementations)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import redis.asyncio as aioredis

from connectors.base import ProviderQuota
from engine.caps.checker import CapChecker
from engine.caps.redis_caps import RedisCapService
from engine.dsl.loader import load_policy
from engine.dsl.policy import CapRule, Policy
from engine.settings import Settings


def load_contact_policy(settings: Settings) -> Policy:
    """``journeys/policy.yaml`` (JOURNEY_POLICY_PATH); no file means no caps and no
    arbitration. Raises DslError for a broken file: a worker must not start without its rules."""
    path = settings.policy_path or settings.journeys_dir / "policy.yaml"
    return load_policy(path) if path.exists() else Policy()


_QUOTA_WINDOWS = {"day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=31)}
"""Rolling windows that contain every calendar period of that name (a month: 31 days), so the
provider's count per period is never exceeded."""


def with_provider_quotas(policy: Policy, quotas: Mapping[str, ProviderQuota]) -> Policy:
    """Add each channel's provider quota (e.g. WeCom's 4 group messages a month per customer)
    as a channel cap, unless the policy already caps that channel."""
    channels = dict(policy.caps.channels)
    for channel, quota in quotas.items():
        if channel not in channels:
            channels[channel] = [CapRule(max=quota.max, per=_QUOTA_WINDOWS[quota.window])]
    caps = policy.caps.model_copy(update={"channels": channels})
    return policy.model_copy(update={"caps": caps})


def redis_client(settings: Settings) -> aioredis.Redis:
    """A client of JOURNEY_REDIS_URL with short timeouts: Redis down fails a send fast (and
    Temporal retries it), it never hangs one."""
    return aioredis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)


def build_cap_checker(
    settings: Settings, quotas: Mapping[str, ProviderQuota] | None = None
) -> CapChecker:
    """The Redis cap service over JOURNEY_REDIS_URL with the contact policy and the providers'
    quotas."""
    client = redis_client(settings)
    policy = with_provider_quotas(load_contact_policy(settings), quotas or {})
    return RedisCapService(client, policy)
