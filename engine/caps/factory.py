"""Choosing the cap checker a worker uses (the one place that knows the implementations)."""

from __future__ import annotations

import redis.asyncio as aioredis

from engine.caps.checker import CapChecker
from engine.caps.redis_caps import RedisCapService
from engine.dsl.loader import load_policy
from engine.dsl.policy import Policy
from engine.settings import Settings


def load_contact_policy(settings: Settings) -> Policy:
    """``journeys/policy.yaml`` (JOURNEY_POLICY_PATH); no file means no caps and no
    arbitration. Raises DslError for a broken file: a worker must not start without its rules."""
    path = settings.policy_path or settings.journeys_dir / "policy.yaml"
    return load_policy(path) if path.exists() else Policy()


def build_cap_checker(settings: Settings) -> CapChecker:
    """The Redis cap service over JOURNEY_REDIS_URL with the contact policy."""
    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    return RedisCapService(client, load_contact_policy(settings))
