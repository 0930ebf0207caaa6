"""The nine numbers: traffic, conversion rate and average order value of new, returning and
dormant customers over a period (and the previous period of the same length).

A person's group is their lifecycle stage (``journeys/tiers.yaml``) at the period's start:

- **new**: never bought before the start, or first purchase within ``new_within`` of it;
- **returning**: not new, last purchase within ``active_within`` of the start (stage active);
- **dormant**: not new, last purchase longer ago (stages dormant and churned).

Traffic: for new and returning customers, the people of the group who were active (any event)
or reached (a message sent to them) in the period; for dormant ones, every dormant person.
Buyers: people of the group with at least one purchase in the period. Conversion rate =
buyers / traffic; average order value = revenue / orders of the group's purchases in the
period (a purchase without a numeric amount counts as an order with no revenue).
"""

from __future__ import annotations

from engine.analytics.model import KpiCell, Kpis
from engine.analytics.period import Period
from engine.dsl.tiers import Tiers
from engine.store import Store
from engine.store.analytics import LifecycleSpec
from engine.store.population import GroupFacts

GROUPS = ("new", "returning", "dormant")


def lifecycle_of(tiers: Tiers) -> LifecycleSpec:
    rules = tiers.lifecycle
    return LifecycleSpec(
        purchase=tiers.purchase.event,
        new_within=rules.new_within,
        active_within=rules.active_within,
        dormant_within=rules.dormant_within,
    )


async def nine_numbers(
    store: Store, tiers: Tiers, period: Period, timezone: str, *, compare: bool = False
) -> Kpis:
    cells = await _cells(store, tiers, period, timezone)
    previous = await _cells(store, tiers, period.previous(), timezone) if compare else None
    return Kpis(start=period.start, end=period.end, cells=cells, previous=previous)


async def _cells(store: Store, tiers: Tiers, period: Period, timezone: str) -> list[KpiCell]:
    start, end = period.instants(timezone)
    facts = await store.kpi_facts(lifecycle_of(tiers), tiers.purchase.amount, start, end)
    return [_cell(group, facts.get(group, GroupFacts(0, 0, 0, 0.0))) for group in GROUPS]


def _cell(group: str, f: GroupFacts) -> KpiCell:
    return KpiCell(
        group=group,
        traffic=f.traffic,
        buyers=f.buyers,
        conversion_rate=f.buyers / f.traffic if f.traffic else None,
        orders=f.orders,
        revenue=f.revenue,
        average_order_value=f.revenue / f.orders if f.orders else None,
    )
