"""A branch step for one person: load what its conditions read, return the first that matches.

    index = await first_match(store, step_conditions, profile_id, workflow_now, rules=tiers)

Only the profile and the events the conditions name are read (within the longest window asked
for; all history before ``now`` for RFM and lifecycle); RFM *scores* also need the population's
quintile cut points, one aggregate query over every buyer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select

from engine.conditions.context import Evaluation, event_needs, needs_cuts
from engine.conditions.python import Person, PersonEvent, evaluate
from engine.conditions.sql import population_cuts
from engine.dsl.conditions import AnyCondition, Condition
from engine.dsl.tiers import Tiers
from engine.store import Store
from engine.store.columns import require_aware
from engine.store.tables import events


async def first_match(
    store: Store,
    conditions: Sequence[Condition],
    profile_id: str,
    now: datetime,
    *,
    rules: Tiers | None = None,
) -> int | None:
    """Index of the first of ``conditions`` the person satisfies at ``now``; None when none
    does or there is no such profile (a merged id reads its survivor).

    ``rules`` are the tier rules (`engine.dsl.loader.load_tiers`); without them the defaults of
    `engine.dsl.tiers.Tiers` apply (no tiers defined). Raises UnknownTier for an undefined tier.
    """
    require_aware(now)
    if not conditions:
        return None
    rules = rules or Tiers()
    everything = AnyCondition(any=list(conditions))
    person = await load_person(store, profile_id, now, event_needs(everything, rules))
    if person is None:
        return None
    evaluation = Evaluation(now=now, rules=rules)
    if needs_cuts(everything, rules):
        async with store.engine.connect() as conn:
            cuts = await population_cuts(conn, store.dialect, now, rules)
        evaluation = Evaluation(now=now, rules=rules, cuts=cuts)
    for index, condition in enumerate(conditions):
        if evaluate(condition, person, evaluation):
            return index
    return None


async def load_person(
    store: Store, profile_id: str, now: datetime, needs: dict[str, timedelta | None]
) -> Person | None:
    """The profile and its events named in ``needs`` (name -> how far back; None: all) that
    occurred before ``now``; None when there is no such profile."""
    profile = await store.get_profile(profile_id)
    if profile is None:
        return None
    if not needs:
        return Person(profile)
    windows = [
        events.c.name == name
        if within is None
        else and_(events.c.name == name, events.c.occurred_at >= now - within)
        for name, within in needs.items()
    ]
    query = select(events.c.name, events.c.occurred_at, events.c.properties).where(
        events.c.profile_id == profile.id, events.c.occurred_at < now, or_(*windows)
    )
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return Person(
        profile, [PersonEvent(row.name, row.occurred_at, dict(row.properties)) for row in rows]
    )
