"""Aggregates over the whole customer base: the nine numbers and the fatigue curve.

Both are one GROUP BY over a per-person subquery built from the events, the delivery log and
the subscriptions; definitions are in ``engine.analytics.kpis`` and ``engine.analytics.fatigue``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Numeric, case, cast, func, literal, null, select, union_all

from engine.store.analytics import LifecycleSpec
from engine.store.core import StoreCore
from engine.store.dialect_sql import for_aggregates, number
from engine.store.tables import deliveries, events, profiles, subscriptions


@dataclass(frozen=True)
class GroupFacts:
    traffic: int
    buyers: int
    orders: int
    revenue: float


@dataclass(frozen=True)
class TouchGroupFacts:
    touches: int
    """The number of marketing touches; the last group holds every count from it on."""
    people: int
    unsubscribed: int
    complained: int


class PopulationStore(StoreCore):
    """The customer base as a whole (see :class:`engine.store.Store`)."""

    async def kpi_facts(
        self, lifecycle: LifecycleSpec, amount: str, start: datetime, end: datetime
    ) -> dict[str, GroupFacts]:
        """new / returning / dormant -> traffic, buyers, orders and revenue in [start, end).

        A person's group is their lifecycle stage at ``start``: new (never bought, or first
        purchase within ``new_within``), returning (active), dormant (dormant or churned).
        Traffic is, for new and returning, the people with an event or a sent message in the
        period; for dormant, every dormant person.
        """
        purchase = events.c.name == lifecycle.purchase
        before = events.c.occurred_at < start
        during = events.c.occurred_at >= start
        value = number(self.dialect, events.c.properties, amount)
        from_events = (
            select(
                events.c.profile_id.label("pid"),
                func.min(case((purchase & before, events.c.occurred_at))).label("first_at"),
                func.max(case((purchase & before, events.c.occurred_at))).label("last_at"),
                func.sum(case((purchase & during, 1), else_=0)).label("orders"),
                func.sum(case((purchase & during, value))).label("revenue"),
                func.max(case((during, 1), else_=0)).label("active"),
                literal(0).label("reached"),
            )
            .where(events.c.occurred_at < end)
            .group_by(events.c.profile_id)
        )
        from_sends = (
            select(
                deliveries.c.profile_id.label("pid"),
                cast(null(), events.c.occurred_at.type).label("first_at"),
                cast(null(), events.c.occurred_at.type).label("last_at"),
                literal(0).label("orders"),
                cast(null(), Numeric()).label("revenue"),
                literal(0).label("active"),
                literal(1).label("reached"),
            )
            .where(
                deliveries.c.status == "sent",
                deliveries.c.created_at >= start,
                deliveries.c.created_at < end,
            )
            .distinct()
        )
        rows = union_all(from_events, from_sends).subquery("rows")
        person = (
            select(
                rows.c.pid,
                func.min(rows.c.first_at).label("first_at"),
                func.max(rows.c.last_at).label("last_at"),
                func.sum(rows.c.orders).label("orders"),
                func.sum(rows.c.revenue).label("revenue"),
                func.max(rows.c.active + rows.c.reached).label("seen"),
            )
            .group_by(rows.c.pid)
            .subquery("person")
        )

        def time(value: datetime) -> Any:
            return literal(value, events.c.occurred_at.type)

        group = case(
            (person.c.last_at.is_(None), "new"),
            (person.c.first_at >= time(start - lifecycle.new_within), "new"),
            (person.c.last_at >= time(start - lifecycle.active_within), "returning"),
            else_="dormant",
        ).label("grp")
        traffic = case((group == "dormant", 1), (person.c.seen > 0, 1), else_=0)
        query = select(
            group,
            func.sum(traffic).label("traffic"),
            func.sum(case((person.c.orders > 0, 1), else_=0)).label("buyers"),
            func.coalesce(func.sum(person.c.orders), 0).label("orders"),
            func.coalesce(func.sum(person.c.revenue), 0).label("revenue"),
        ).group_by(group)
        async with self._engine.connect() as conn:
            await for_aggregates(conn)
            return {
                r.grp: GroupFacts(int(r.traffic), int(r.buyers), int(r.orders), float(r.revenue))
                for r in await conn.execute(query)
            }

    async def fatigue_facts(
        self, start: datetime, end: datetime, *, last_group: int
    ) -> list[TouchGroupFacts]:
        """People grouped by the marketing messages sent to them in [start, end) (``last_group``
        and more together), with how many unsubscribed (a channel's consent withdrawn, or an
        ``unsubscribed`` event) and complained (a ``complained`` event) in that window. Everyone
        with a profile created before ``end`` counts, touched or not."""
        zero = literal(0)
        people = select(
            profiles.c.id.label("pid"),
            zero.label("touches"),
            zero.label("unsubscribed"),
            zero.label("complained"),
        ).where(profiles.c.created_at < end)
        touched = (
            select(
                deliveries.c.profile_id.label("pid"),
                func.count().label("touches"),
                zero.label("unsubscribed"),
                zero.label("complained"),
            )
            .where(
                deliveries.c.status == "sent",
                deliveries.c.category == "marketing",
                deliveries.c.created_at >= start,
                deliveries.c.created_at < end,
            )
            .group_by(deliveries.c.profile_id)
        )
        withdrawn = select(
            subscriptions.c.profile_id.label("pid"),
            zero.label("touches"),
            literal(1).label("unsubscribed"),
            zero.label("complained"),
        ).where(
            subscriptions.c.status == "unsubscribed",
            subscriptions.c.updated_at >= start,
            subscriptions.c.updated_at < end,
        )
        flagged = select(
            events.c.profile_id.label("pid"),
            zero.label("touches"),
            case((events.c.name == "unsubscribed", 1), else_=0).label("unsubscribed"),
            case((events.c.name == "complained", 1), else_=0).label("complained"),
        ).where(
            events.c.name.in_(("unsubscribed", "complained")),
            events.c.occurred_at >= start,
            events.c.occurred_at < end,
        )
        rows = union_all(people, touched, withdrawn, flagged).subquery("rows")
        person = (
            select(
                func.sum(rows.c.touches).label("touches"),
                func.max(rows.c.unsubscribed).label("unsubscribed"),
                func.max(rows.c.complained).label("complained"),
            )
            .group_by(rows.c.pid)
            .subquery("person")
        )
        bucket = case((person.c.touches >= last_group, last_group), else_=person.c.touches).cast(
            Integer
        )
        query: Any = (
            select(
                bucket.label("touches"),
                func.count().label("people"),
                func.sum(person.c.unsubscribed).label("unsubscribed"),
                func.sum(person.c.complained).label("complained"),
            )
            .group_by(bucket)
            .order_by(bucket)
        )
        async with self._engine.connect() as conn:
            await for_aggregates(conn)
            return [
                TouchGroupFacts(
                    int(r.touches), int(r.people), int(r.unsubscribed), int(r.complained)
                )
                for r in await conn.execute(query)
            ]
