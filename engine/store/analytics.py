"""What one journey did, aggregated in the database (GROUP BY, never a loop over every row).

Definitions (the README's "Measuring" section says the same):

- An **order** of an enrollment is a goal event of the person whose time lies in
  ``[entered_at, entered_at + within]``. An order inside the windows of two enrollments of the
  same person (re-entry) belongs to the later one only, so nothing is counted twice.
- An enrollment **converted** when it has at least one order; its **revenue** is the sum of its
  orders' numeric ``value`` property (an order without one counts as an order, with no revenue).
- An order's **last touch** is the last message of the journey actually sent (status ``sent``)
  to the person at or after entry and at or before the order.
- A person's **channel** in a run is the channel of the first message sent to them in that run
  (``none`` when nothing was sent: holdouts, suppressed sends); their **stage** is their
  lifecycle stage when they entered (the rules of ``journeys/tiers.yaml``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    and_,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable
from sqlalchemy.sql.selectable import Selectable

from engine.store.columns import UTCDateTime
from engine.store.core import StoreCore
from engine.store.dialect_sql import (
    Expr,
    array_items,
    day,
    for_aggregates,
    number,
    object_items,
    shifted,
)
from engine.store.tables import deliveries, enrollments, events, profiles


@dataclass(frozen=True)
class GoalSpec:
    event: str
    within: timedelta
    value: str | None = None


@dataclass(frozen=True)
class LifecycleSpec:
    """The purchase event and the lifecycle windows (``journeys/tiers.yaml``)."""

    purchase: str = "order_paid"
    new_within: timedelta = timedelta(days=30)
    active_within: timedelta = timedelta(days=60)
    dormant_within: timedelta = timedelta(days=120)


@dataclass(frozen=True)
class Outcome:
    """Conversion sums over a group of enrollments."""

    people: int = 0
    converted: int = 0
    orders: int = 0
    valued: int = 0
    """Orders whose value property was a number."""
    revenue: float = 0.0
    revenue_squares: float = 0.0
    """Sum over people of (their revenue)^2, for the variance of revenue per person."""


@dataclass(frozen=True)
class TouchFacts:
    step: str | None
    """None: orders with no message sent before them (holdouts, suppressed sends)."""
    channel: str | None
    template: str | None
    conversions: int
    orders: int
    revenue: float


@dataclass(frozen=True)
class DayFacts:
    day: date
    sends: int = 0
    conversions: int = 0
    revenue: float = 0.0


@dataclass(frozen=True)
class JourneyFacts:
    statuses: dict[str, int]
    exits: dict[str, int]
    """Exit step -> finished runs that ended there."""
    reached: dict[str, tuple[int, int]]
    """Step -> (people who reached it, of whom converted)."""
    sends: dict[tuple[str, str], int]
    """(step, delivery status) -> deliveries."""
    reasons: dict[str, int]
    """Suppression reason -> suppressed or expired sends."""
    total: Outcome
    arms: dict[tuple[str, str], Outcome]
    """(split step, variant) -> outcome of the people who landed in it."""
    touches: list[TouchFacts]
    days: list[DayFacts]
    channel_stage: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    """(first channel, lifecycle stage at entry) -> outcome."""
    channel_tier: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    """(first channel, member tier at the report's time) -> outcome (with ``tier_of``)."""
    endings: dict[tuple[str, str | None], int] = field(default_factory=dict)
    """(status, exit reason) -> finished runs that ended so."""


class AnalyticsStore(StoreCore):
    """Aggregates for the report (see :class:`engine.store.Store`)."""

    async def journey_facts(
        self,
        journey_id: str,
        goal: GoalSpec | None,
        lifecycle: LifecycleSpec,
        *,
        entered_from: datetime | None = None,
        entered_before: datetime | None = None,
        tier_of: Expr | None = None,
    ) -> JourneyFacts:
        """Every aggregate of one journey's report, for the people who entered in
        ``[entered_from, entered_before)`` (all when None). A journey without a goal has no
        conversions. ``tier_of``, an expression over ``tables.profiles`` giving a person's tier
        (the segment compiler builds it), adds the channel effect by tier."""
        q = _Queries(self.dialect, journey_id, goal, lifecycle, entered_from, entered_before)
        # The orders and conversions are computed once into temporary tables (private to this
        # connection, in SQLite's temp database: no write lock on the store) that every
        # aggregate reads; they are dropped at the end, and a failure's rollback undoes their
        # creation (DDL is transactional on both databases), so a pooled connection never
        # keeps them.
        async with self._engine.begin() as conn:
            await for_aggregates(conn)
            await q.materialise(conn)
            facts = JourneyFacts(
                statuses=await _pairs(conn, q.statuses()),
                exits=await _pairs(conn, q.exits()),
                endings={
                    (r.status, r.exit_reason): int(r.n) for r in await conn.execute(q.endings())
                },
                reached={
                    r.step: (int(r.reached), int(r.converted))
                    for r in await conn.execute(q.reached())
                },
                sends={(r.step_id, r.status): int(r.n) for r in await conn.execute(q.sends())},
                reasons=await _pairs(conn, q.reasons()),
                total=_outcome((await conn.execute(q.total())).one()),
                arms={(r.step, r.variant): _outcome(r) for r in await conn.execute(q.arms())},
                touches=[
                    TouchFacts(
                        r.step_id,
                        r.channel,
                        r.template,
                        int(r.conversions),
                        int(r.orders),
                        float(r.revenue or 0),
                    )
                    for r in await conn.execute(q.touches())
                ],
                days=await _days(conn, q),
                channel_stage={
                    (r.channel, r.stage): _outcome(r) for r in await conn.execute(q.channel_stage())
                },
                channel_tier={}
                if tier_of is None
                else {
                    (r.channel, r.stage): _outcome(r)
                    for r in await conn.execute(q.channel_stage(tier_of))
                },
            )
            await q.drop(conn)
        return facts


async def _pairs(conn: AsyncConnection, query: Executable) -> dict[str, int]:
    return {str(key): int(n) for key, n in await conn.execute(query) if key is not None}


async def _days(conn: AsyncConnection, q: _Queries) -> list[DayFacts]:
    merged: dict[str, dict[str, float]] = {}
    for r in await conn.execute(q.sends_by_day()):
        merged.setdefault(r.day, {})["sends"] = int(r.n)
    for r in await conn.execute(q.conversions_by_day()):
        merged.setdefault(r.day, {})["conversions"] = int(r.n)
    for r in await conn.execute(q.revenue_by_day()):
        merged.setdefault(r.day, {})["revenue"] = float(r.revenue or 0)
    return [
        DayFacts(
            date.fromisoformat(key),
            int(values.get("sends", 0)),
            int(values.get("conversions", 0)),
            float(values.get("revenue", 0.0)),
        )
        for key, values in sorted(merged.items())
    ]


def _outcome(row: Any) -> Outcome:
    return Outcome(
        people=int(row.people or 0),
        converted=int(row.converted or 0),
        orders=int(row.orders or 0),
        valued=int(row.valued or 0),
        revenue=float(row.revenue or 0),
        revenue_squares=float(row.revenue_squares or 0),
    )


_TEMP = MetaData()
_VALUE = Numeric().with_variant(Float(), "sqlite")
_ORDERS = Table(
    "report_orders",
    _TEMP,
    Column("enrollment_id", String),
    Column("occurred_at", UTCDateTime),
    Column("value", _VALUE),
    Column("touch_key", String),
    prefixes=["TEMPORARY"],
)
_CONVERTED = Table(
    "report_converted",
    _TEMP,
    Column("enrollment_id", String, primary_key=True),
    Column("orders", Integer),
    Column("valued", Integer),
    Column("revenue", _VALUE),
    Column("first_at", UTCDateTime),
    prefixes=["TEMPORARY"],
)


class _Queries:
    """The statements of one journey's report."""

    def __init__(
        self,
        dialect: str,
        journey_id: str,
        goal: GoalSpec | None,
        lifecycle: LifecycleSpec,
        entered_from: datetime | None,
        entered_before: datetime | None,
    ) -> None:
        self.dialect = dialect
        self.journey_id = journey_id
        self.goal = goal
        self.lifecycle = lifecycle
        self.entered_from = entered_from
        self.entered_before = entered_before

    # -- building blocks ---------------------------------------------------------------------

    def scope(self, table: Any = enrollments) -> list[Expr]:
        """The enrollments of the report: this journey, entered in the period."""
        where: list[Expr] = [table.c.journey_id == self.journey_id]
        if self.entered_from is not None:
            where.append(table.c.entered_at >= self.entered_from)
        if self.entered_before is not None:
            where.append(table.c.entered_at < self.entered_before)
        return where

    async def materialise(self, conn: AsyncConnection) -> None:
        """Fill the temporary tables: every attributed order, then every converted run."""
        await conn.run_sync(_TEMP.create_all)
        columns = ["enrollment_id", "occurred_at", "value", "touch_key"]
        await conn.execute(insert(_ORDERS).from_select(columns, self._order_rows()))
        o = _ORDERS
        conversions = select(
            o.c.enrollment_id,
            func.count(),
            func.count(o.c.value),
            func.coalesce(func.sum(o.c.value), 0),
            func.min(o.c.occurred_at),
        ).group_by(o.c.enrollment_id)
        await conn.execute(
            insert(_CONVERTED).from_select(
                ["enrollment_id", "orders", "valued", "revenue", "first_at"], conversions
            )
        )

    async def drop(self, conn: AsyncConnection) -> None:
        await conn.run_sync(_TEMP.drop_all)

    def orders(self) -> Table:
        """One row per attributed order: enrollment id, time, value, last touch's send key."""
        return _ORDERS

    def converted(self) -> Table:
        """One row per converted enrollment: orders, valued orders, revenue, first order."""
        return _CONVERTED

    def _order_rows(self) -> Selectable:
        e, x = enrollments.alias("e"), events.alias("x")
        if self.goal is None:
            return select(
                e.c.id, e.c.entered_at, cast(null(), Numeric()), cast(null(), String())
            ).where(literal(False))
        later = enrollments.alias("later")
        d = deliveries.alias("d")
        value = (
            number(self.dialect, x.c.properties, self.goal.value)
            if self.goal.value
            else cast(null(), Numeric())
        )
        touch = (
            select(d.c.send_key)
            .where(
                d.c.journey_id == self.journey_id,
                d.c.profile_id == e.c.profile_id,
                d.c.status == "sent",
                d.c.created_at >= e.c.entered_at,
                d.c.created_at <= x.c.occurred_at,
            )
            .order_by(d.c.created_at.desc(), d.c.send_key.desc())
            .limit(1)
            .scalar_subquery()
        )
        return (
            select(e.c.id, x.c.occurred_at, value, touch)
            .select_from(e)
            .join(
                x,
                and_(
                    x.c.profile_id == e.c.profile_id,
                    x.c.name == self.goal.event,
                    x.c.occurred_at >= e.c.entered_at,
                    x.c.occurred_at <= shifted(self.dialect, e.c.entered_at, self.goal.within),
                ),
            )
            .where(
                *self.scope(e),
                ~exists(
                    select(literal(1)).where(
                        later.c.journey_id == self.journey_id,
                        later.c.profile_id == e.c.profile_id,
                        later.c.entered_at > e.c.entered_at,
                        later.c.entered_at <= x.c.occurred_at,
                    )
                ),
            )
        )

    @staticmethod
    def outcome_columns(c: Table, people: Expr) -> list[Any]:
        return [
            people.label("people"),
            func.count(c.c.enrollment_id).label("converted"),
            func.coalesce(func.sum(c.c.orders), 0).label("orders"),
            func.coalesce(func.sum(c.c.valued), 0).label("valued"),
            func.coalesce(func.sum(c.c.revenue), 0).label("revenue"),
            func.coalesce(func.sum(c.c.revenue * c.c.revenue), 0).label("revenue_squares"),
        ]

    # -- the statements ----------------------------------------------------------------------

    def statuses(self) -> Executable:
        return (
            select(enrollments.c.status, func.count())
            .where(*self.scope())
            .group_by(enrollments.c.status)
        )

    def endings(self) -> Executable:
        return (
            select(enrollments.c.status, enrollments.c.exit_reason, func.count().label("n"))
            .where(*self.scope(), enrollments.c.status != "active")
            .group_by(enrollments.c.status, enrollments.c.exit_reason)
        )

    def exits(self) -> Executable:
        return (
            select(enrollments.c.exit_step, func.count())
            .where(*self.scope(), enrollments.c.status != "active")
            .group_by(enrollments.c.exit_step)
        )

    def reached(self) -> Executable:
        steps = array_items(self.dialect, enrollments.c.path, "steps")
        c = self.converted()
        return (
            select(
                steps.c.value.label("step"),
                func.count(func.distinct(enrollments.c.id)).label("reached"),
                func.count(func.distinct(c.c.enrollment_id)).label("converted"),
            )
            .select_from(enrollments)
            .join(steps, true())
            .outerjoin(c, c.c.enrollment_id == enrollments.c.id)
            .where(*self.scope())
            .group_by(steps.c.value)
        )

    def sends(self) -> Executable:
        return (
            select(deliveries.c.step_id, deliveries.c.status, func.count().label("n"))
            .where(*self._delivery_scope())
            .group_by(deliveries.c.step_id, deliveries.c.status)
        )

    def reasons(self) -> Executable:
        return (
            select(deliveries.c.reason, func.count())
            .where(*self._delivery_scope(), deliveries.c.status.in_(("suppressed", "expired")))
            .group_by(deliveries.c.reason)
        )

    def _delivery_scope(self) -> list[Expr]:
        """Deliveries of the journey; with a period, those sent by runs entered in it (a run's
        sends come at or after its entry, so the send's own time bounds it from below)."""
        where: list[Expr] = [deliveries.c.journey_id == self.journey_id]
        if self.entered_from is None and self.entered_before is None:
            return where
        e = enrollments.alias("owner")
        where.append(
            exists(
                select(literal(1)).where(
                    *self.scope(e),
                    e.c.profile_id == deliveries.c.profile_id,
                    e.c.entered_at <= deliveries.c.created_at,
                    or_(e.c.ended_at.is_(None), e.c.ended_at >= deliveries.c.created_at),
                )
            )
        )
        return where

    def total(self) -> Executable:
        c = self.converted()
        return (
            select(*self.outcome_columns(c, func.count(enrollments.c.id)))
            .select_from(enrollments)
            .outerjoin(c, c.c.enrollment_id == enrollments.c.id)
            .where(*self.scope())
        )

    def arms(self) -> Executable:
        arms = object_items(self.dialect, enrollments.c.variants, "arms")
        c = self.converted()
        return (
            select(
                arms.c.key.label("step"),
                arms.c.value.label("variant"),
                *self.outcome_columns(c, func.count(enrollments.c.id)),
            )
            .select_from(enrollments)
            .join(arms, true())
            .outerjoin(c, c.c.enrollment_id == enrollments.c.id)
            .where(*self.scope())
            .group_by(arms.c.key, arms.c.value)
        )

    def touches(self) -> Executable:
        o = self.orders()
        return (
            select(
                deliveries.c.step_id,
                deliveries.c.channel,
                deliveries.c.template,
                func.count(func.distinct(o.c.enrollment_id)).label("conversions"),
                func.count().label("orders"),
                func.coalesce(func.sum(o.c.value), 0).label("revenue"),
            )
            .select_from(o)
            .outerjoin(deliveries, deliveries.c.send_key == o.c.touch_key)
            .group_by(deliveries.c.step_id, deliveries.c.channel, deliveries.c.template)
        )

    def sends_by_day(self) -> Executable:
        when = day(self.dialect, deliveries.c.created_at)
        return (
            select(when.label("day"), func.count().label("n"))
            .where(*self._delivery_scope(), deliveries.c.status == "sent")
            .group_by(when)
        )

    def conversions_by_day(self) -> Executable:
        c = self.converted()
        when = day(self.dialect, c.c.first_at)
        return select(when.label("day"), func.count().label("n")).group_by(when)

    def revenue_by_day(self) -> Executable:
        o = self.orders()
        when = day(self.dialect, o.c.occurred_at)
        return select(
            when.label("day"), func.coalesce(func.sum(o.c.value), 0).label("revenue")
        ).group_by(when)

    def channel_stage(self, tier_of: Expr | None = None) -> Executable:
        """Outcomes by first channel and lifecycle stage at entry (or, with ``tier_of``, by
        the tier it gives)."""
        e = enrollments
        d = deliveries.alias("first_send")
        first_channel = (
            select(d.c.channel)
            .where(
                d.c.journey_id == self.journey_id,
                d.c.profile_id == e.c.profile_id,
                d.c.status == "sent",
                d.c.created_at >= e.c.entered_at,
                or_(e.c.ended_at.is_(None), d.c.created_at <= e.c.ended_at),
            )
            .order_by(d.c.created_at, d.c.send_key)
            .limit(1)
            .scalar_subquery()
        )
        rules = self.lifecycle

        def bought(aggregate: Any) -> Any:
            p = events.alias("p")
            return (
                select(aggregate(p.c.occurred_at))
                .where(
                    p.c.profile_id == e.c.profile_id,
                    p.c.name == rules.purchase,
                    p.c.occurred_at < e.c.entered_at,
                )
                .scalar_subquery()
            )

        if tier_of is None:
            people = (
                select(
                    e.c.id.label("enrollment_id"),
                    e.c.entered_at,
                    func.coalesce(first_channel, "none").label("channel"),
                    bought(func.min).label("first_at"),
                    bought(func.max).label("last_at"),
                )
                .where(*self.scope(e))
                .subquery("people")
            )
            group = self._stage(people.c.entered_at, people.c.first_at, people.c.last_at)
        else:
            people = (
                select(
                    e.c.id.label("enrollment_id"),
                    func.coalesce(first_channel, "none").label("channel"),
                    func.coalesce(tier_of, "none").label("tier"),
                )
                .select_from(e.outerjoin(profiles, profiles.c.id == e.c.profile_id))
                .where(*self.scope(e))
                .subquery("people")
            )
            group = people.c.tier
        c = self.converted()
        return (
            select(
                people.c.channel,
                group.label("stage"),
                *self.outcome_columns(c, func.count(people.c.enrollment_id)),
            )
            .select_from(people)
            .outerjoin(c, c.c.enrollment_id == people.c.enrollment_id)
            .group_by(people.c.channel, group)
        )

    def _stage(self, at: Expr, first: Expr, last: Expr) -> Expr:
        """The lifecycle stage at ``at`` of a person whose purchases before it were between
        ``first`` and ``last`` (the rules of engine.dsl.tiers)."""
        rules = self.lifecycle
        return case(
            (last.is_(None), "prospect"),
            (first >= shifted(self.dialect, at, -rules.new_within), "new"),
            (last >= shifted(self.dialect, at, -rules.active_within), "active"),
            (last >= shifted(self.dialect, at, -rules.dormant_within), "dormant"),
            else_="churned",
        )


__all__: Sequence[str] = (
    "AnalyticsStore",
    "DayFacts",
    "GoalSpec",
    "JourneyFacts",
    "LifecycleSpec",
    "Outcome",
    "TouchFacts",
)
