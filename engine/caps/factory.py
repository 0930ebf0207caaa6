"""Choosing the cap checker a worker uses (the one place that knows the implementations)."""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

from connectors.base import ProviderQuota
from engine.caps.checker import CapChecker
from engine.caps.redis_caps import RedisCapService
from engine.caps.rules import ChannelQuota
from engine.dsl.loader import load_policy
from engine.dsl.policy import Policy
from engine.settings import Settings


def load_contact_policy(settings: Settings) -> Policy:
    """``journeys/policy.yaml`` (JOURNEY_POLICY_PATH); no file means no caps and no
    arbitration. Raises DslError for a broken file: a worker must not start without its rules."""
    path = settings.policy_path or settings.journeys_dir / "policy.yaml"
    return load_policy(path) if path.exists() else Policy()


def channel_quotas(quotas: Mapping[str, ProviderQuota]) -> dict[str, ChannelQuota]:
    """Each channel's provider quota (e.g. WeCom's 4 group messages a calendar month per
    customer, in Asia/Shanghai) as the cap service enforces it: on top of the policy."""
    return {
        channel: ChannelQuota(max=quota.max, period=quota.window, timezone=quota.timezone)
        for channel, quota in quotas.items()
    }


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
    return RedisCapService(client, load_contact_policy(settings), channel_quotas(quotas or {}))
