"""Budgets: what a journey (or every journey sharing a tag) may spend in all, across everyone.

A budget counts the messages sent and the value they carry (a send step's ``value``) in one
Redis hash, ``jb:{b:<scope>}:used``; each send's share is a record ``jb:{b:<scope>}:r:<send
key>`` (``a<value>`` reserved, ``x`` given back), so reserving is idempotent on the send key and
a send that fails for good gives exactly its share back. Scopes: ``journey:<id>`` (the journey
file's ``budget``) and ``tag:<tag>`` (the policy's ``budgets``, shared by the tag's journeys).

Each budget has its own hash tag: it lives in its own Redis Cluster slot, never in a person's,
so a send's budgets and its caps cannot be one Lua call. `RedisCapService` sends RESERVE (the
person's slot) and one BUDGET_RESERVE per budget in one pipeline (one network round trip on a
single Redis; on Cluster, one per node, in parallel) and compensates: a refusal on either side
gives back what the other side reserved. The guarantee, the same on a single Redis and on
Cluster: a budget is never overspent (each budget's check-and-add is one atomic script), a send
refused by either side is not sent and keeps nothing reserved, and a retried activity never
counts twice (both sides are idempotent on the send key). Not guaranteed: that a send refused by
the caps never holds budget for an instant (it does, until the compensation a moment later), so
a concurrent send near the limit may be refused for budget that then frees; and a worker dying
between a refusal and the compensation leaves that share held until the activity's retry (same
send key, same answers) gives it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import redis.asyncio as aioredis

from engine.dsl.models import Budget
from engine.dsl.policy import Policy

RECORD_KEEP = timedelta(days=400)
"""How long a send's budget record lives: a release later than that gives nothing back."""


@dataclass(frozen=True)
class BudgetLimit:
    scope: str
    """``journey:<id>`` or ``tag:<tag>``."""
    max_sends: int | None
    max_value: int | None


@dataclass(frozen=True)
class BudgetUsage:
    sends: int
    value: int


def budget_key(scope: str, name: str) -> str:
    """``jb:{b:<scope>}:<name>``: the hash tag keeps one budget's keys in one cluster slot."""
    return f"jb:{{b:{scope}}}:{name}"


def journey_scope(journey_id: str) -> str:
    return f"journey:{journey_id}"


def budget_scopes(journey_id: str, tags: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Every budget a send of this journey may have reserved in (a release tries them all: a
    budget it never reserved in holds no record of it)."""
    return (journey_scope(journey_id), *(f"tag:{tag}" for tag in tags))


def budgets_for(
    policy: Policy, journey_id: str, budget: Budget | None, tags: tuple[str, ...]
) -> tuple[BudgetLimit, ...]:
    """The budgets a send must fit in: its journey's, then each of its tags' in the policy."""
    found = []
    if budget is not None:
        found.append(BudgetLimit(journey_scope(journey_id), budget.max_sends, budget.max_value))
    for tag in dict.fromkeys(tags):
        shared = policy.budgets.get(tag)
        if shared is not None:
            found.append(BudgetLimit(f"tag:{tag}", shared.max_sends, shared.max_value))
    return tuple(found)


async def budget_usage(redis: aioredis.Redis, scope: str) -> BudgetUsage:
    """What a budget has spent so far (sends and value reserved and not given back)."""
    sends, value = await redis.hmget(budget_key(scope, "used"), ["sends", "value"])
    return BudgetUsage(int(sends or 0), int(value or 0))
