"""Compile a condition to SQL over ``profiles`` (SQLAlchemy Core; SQLite and PostgreSQL).

    evaluation = await prepare(store, condition, now, rules)   # RFM cut points, if needed
    where = SqlCompiler(store.dialect, evaluation).where(condition)
    select(profiles.c.id).where(where)

Every value from a condition is a bound parameter; attribute and property names are validated
by the language (letters, digits, ``_`` and ``.``) and are bound too (as JSON paths or keys), so
no text from a file or a request ever becomes SQL. Each leaf predicate is wrapped in
``COALESCE(..., false)``: SQL's unknown becomes false before ``NOT`` sees it, which is the
Python evaluator's two-valued logic. Event facts are correlated subqueries that use the
``(profile_id, name, occurred_at)`` index.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Numeric,
    Select,
    String,
    Text,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.conditions.context import Evaluation, needs_cuts
from engine.conditions.metrics import (
    DAY,
    Cuts,
    cut_positions,
    decimal,
    lower_bound,
    money,
)
from engine.conditions.python import kind_of
from engine.dsl.conditions import (
    AllCondition,
    AnyCondition,
    AttributeCondition,
    Condition,
    EventCondition,
    LifecycleCondition,
    NotCondition,
    NumericComparison,
    RfmCondition,
    TagCondition,
    TierCondition,
)
from engine.dsl.tiers import Tiers
from engine.store import Store
from engine.store.columns import UTCDateTime
from engine.store.tables import events, profiles

Expr = ColumnElement[Any]

_OPS: dict[str, Callable[[Any, Any], Expr]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


async def prepare(store: Store, condition: Condition, now: datetime, rules: Tiers) -> Evaluation:
    """The evaluation of ``condition`` at ``now``: with the RFM cut points over every buyer
    when the condition (or a tier it names) compares a score. Raises UnknownTier."""
    if not needs_cuts(condition, rules):
        return Evaluation(now=now, rules=rules)
    async with store.engine.connect() as conn:
        cuts = await population_cuts(conn, store.dialect, now, rules)
    return Evaluation(now=now, rules=rules, cuts=cuts)


async def population_cuts(
    conn: AsyncConnection, dialect: str, now: datetime, rules: Tiers
) -> Cuts | None:
    """The RFM quintile cut points over every buyer at ``now`` (None when nobody bought)."""
    json_ = _Json.for_dialect(dialect)
    low = lower_bound(now, rules.rfm.window)
    in_window = true() if low is None else events.c.occurred_at >= low
    amount = json_.number(events.c.properties, rules.purchase.amount)
    buyers = (
        select(
            events.c.profile_id,
            func.max(events.c.occurred_at).label("recency"),
            func.count(case((in_window, 1))).label("frequency"),
            json_.money_sum(case((in_window, amount))).label("monetary"),
        )
        .join(profiles, profiles.c.id == events.c.profile_id)
        .where(events.c.name == rules.purchase.event, events.c.occurred_at < now)
        .group_by(events.c.profile_id)
        .subquery("buyers")
    )
    count = int((await conn.execute(select(func.count()).select_from(buyers))).scalar_one())
    if count == 0:
        return None
    positions = [p + 1 for p in cut_positions(count)]
    found: dict[str, list[Any]] = {}
    for metric in ("recency", "frequency", "monetary"):
        column = buyers.c[metric]
        ranked = select(
            column.label("v"), func.row_number().over(order_by=column).label("rn")
        ).subquery("ranked")
        rows = await conn.execute(
            select(ranked.c.rn, ranked.c.v).where(ranked.c.rn.in_(set(positions)))
        )
        at = {int(rn): v for rn, v in rows}
        found[metric] = [at[p] for p in positions]
    return Cuts(
        recency=tuple(_as_time(v) for v in found["recency"]),
        frequency=tuple(int(v) for v in found["frequency"]),
        monetary=tuple(money(_as_decimal(v)) for v in found["monetary"]),
        buyers=count,
    )


def members_query(
    where: Expr, *, after: str | None = None, limit: int | None = None
) -> Select[Any]:
    """Ids of the profiles matching ``where``, in id order, after ``after`` (keyset paging)."""
    query = select(profiles.c.id).where(where).order_by(profiles.c.id)
    if after is not None:
        query = query.where(profiles.c.id > after)
    if limit is not None:
        query = query.limit(limit)
    return query


class SqlCompiler:
    """Compiles conditions to boolean SQL expressions over ``profiles`` for one evaluation."""

    def __init__(self, dialect: str, evaluation: Evaluation) -> None:
        self._json = _Json.for_dialect(dialect)
        self._pg = dialect == "postgresql"
        self._evaluation = evaluation
        self._now = evaluation.now

    def where(self, condition: Condition) -> Expr:
        """The condition as a two-valued SQL boolean. Raises UnknownTier."""
        if isinstance(condition, AttributeCondition):
            return _leaf(self._attribute(condition))
        if isinstance(condition, TagCondition):
            return _leaf(self._json.has_tag(condition.tag))
        if isinstance(condition, EventCondition):
            return _leaf(self._event(condition))
        if isinstance(condition, RfmCondition):
            return _leaf(self._rfm(condition))
        if isinstance(condition, LifecycleCondition):
            return or_(*(_leaf(self._stage(stage)) for stage in condition.lifecycle))
        if isinstance(condition, TierCondition):
            # A person's tier is the first, from the top, whose condition matches.
            return or_(
                *(
                    and_(self.where(tier.when), *(not_(self.where(a.when)) for a in above))
                    for tier, above in self._evaluation.tiers_for(condition)
                )
            )
        if isinstance(condition, AllCondition):
            return and_(*(self.where(c) for c in condition.all))
        if isinstance(condition, AnyCondition):
            return or_(*(self.where(c) for c in condition.any))
        if isinstance(condition, NotCondition):
            return not_(self.where(condition.not_))
        raise TypeError(f"unknown condition {type(condition).__name__}")

    # -- attributes --------------------------------------------------------------------------

    def _attribute(self, condition: AttributeCondition) -> Expr:
        json_ = self._json
        col = profiles.c.attributes
        key = condition.attribute
        op = condition.operator
        operand = condition.operand(op)
        if op == "exists":
            present = json_.present(col, key)
            return present if operand else not_(present)
        if op in _OPS:
            kind = kind_of(operand)
            return _OPS[op](json_.typed(col, key, kind), json_.bind(operand, kind))
        if op == "between":
            low, high = operand
            kind = kind_of(low)
            if kind != kind_of(high):
                return false()
            typed = json_.typed(col, key, kind)
            return and_(typed >= json_.bind(low, kind), typed <= json_.bind(high, kind))
        if op in ("in", "not_in"):
            groups: dict[str, list[Any]] = {}
            for value in operand:
                groups.setdefault(str(kind_of(value)), []).append(value)
            if op == "in":
                return or_(
                    *(
                        json_.typed(col, key, kind).in_([json_.bind(v, kind) for v in values])
                        for kind, values in groups.items()
                    )
                )
            if len(groups) != 1:
                return false()  # no value is comparable with operands of two types
            [(kind, values)] = groups.items()
            return json_.typed(col, key, kind).not_in([json_.bind(v, kind) for v in values])
        if op == "contains":
            found = json_.array_has(col, key, operand)
            if isinstance(operand, str):
                found = or_(found, json_.substring(col, key, operand))
            return found
        raise ValueError(f"unknown operator {op}")

    # -- events ------------------------------------------------------------------------------

    def _window(self, name: str, within: timedelta | None) -> list[Expr]:
        where: list[Expr] = [
            events.c.profile_id == profiles.c.id,
            events.c.name == name,
            events.c.occurred_at < self._now,
        ]
        low = lower_bound(self._now, within)
        if low is not None:
            where.append(events.c.occurred_at >= low)
        return where

    def _count(self, name: str, within: timedelta | None) -> Expr:
        return select(func.count()).where(*self._window(name, within)).scalar_subquery()

    def _sum(self, name: str, prop: str, within: timedelta | None) -> Expr:
        total = self._json.money_sum(self._json.number(events.c.properties, prop))
        return select(total).where(*self._window(name, within)).scalar_subquery()

    def _event(self, condition: EventCondition) -> Expr:
        if condition.sum is not None:
            return self._compare(
                self._sum(condition.event, condition.sum, condition.within), condition
            )
        return self._compare(self._count(condition.event, condition.within), condition.measure)

    def _compare(self, value: Expr, comparison: NumericComparison) -> Expr:
        op = comparison.operator
        operand = comparison.operand
        if op == "between":
            low, high = operand
            return and_(value >= self._json.number_bind(low), value <= self._json.number_bind(high))
        return _OPS[op](value, self._json.number_bind(operand))

    # -- purchases: RFM, lifecycle -----------------------------------------------------------

    def _purchases(self, aggregate: Callable[[Any], Any]) -> Expr:
        rules = self._evaluation.rules
        return (
            select(aggregate(events.c.occurred_at))
            .where(*self._window(rules.purchase.event, None))
            .scalar_subquery()
        )

    def _last(self) -> Expr:
        return self._purchases(func.max)

    def _first(self) -> Expr:
        return self._purchases(func.min)

    def _rfm(self, condition: RfmCondition) -> Expr:
        rules = self._evaluation.rules
        metric = condition.rfm
        last = self._last()
        if metric == "recency":
            return self._recency(last, condition)
        if metric == "frequency":
            value = self._count(rules.purchase.event, rules.rfm.window)
            return and_(last.is_not(None), self._compare(value, condition))
        if metric == "monetary":
            value = self._sum(rules.purchase.event, rules.purchase.amount, rules.rfm.window)
            return and_(last.is_not(None), self._compare(value, condition))
        cuts = self._evaluation.cuts
        if cuts is None:
            return false()
        if metric == "recency_score":
            value, points = last, [self._time(c) for c in cuts.recency]
        elif metric == "frequency_score":
            value = self._count(rules.purchase.event, rules.rfm.window)
            points = [self._json.number_bind(c) for c in cuts.frequency]
        else:
            value = self._sum(rules.purchase.event, rules.purchase.amount, rules.rfm.window)
            points = [self._json.number_bind(c) for c in cuts.monetary]
        score: Expr = literal(1)
        for point in points:
            score = score + case((value > point, 1), else_=0)
        return and_(last.is_not(None), self._compare(score, condition))

    def _recency(self, last: Expr, condition: RfmCondition) -> Expr:
        """Whole days since ``last``, compared without date arithmetic in SQL:
        ``days >= n`` is ``last <= now - n days`` and ``days <= n`` is
        ``last > now - (n + 1) days``."""

        def at_least(n: int) -> Expr:
            bound = self._days_before(n)
            if bound is None:  # beyond the calendar: true for every buyer, or for nobody
                return false() if n > 0 else last.is_not(None)
            return last <= self._time(bound)

        def at_most(n: int) -> Expr:
            bound = self._days_before(n + 1)
            if bound is None:
                return last.is_not(None) if n > 0 else false()
            return last > self._time(bound)

        op = condition.operator
        n = condition.operand
        if op == "between":
            return and_(at_least(n[0]), at_most(n[1]))
        if op == "ne":
            return or_(at_most(n - 1), at_least(n + 1))
        if op == "eq":
            return and_(at_least(n), at_most(n))
        if op == "gt":
            return at_least(n + 1)
        if op == "gte":
            return at_least(n)
        if op == "lt":
            return at_most(n - 1)
        return at_most(n)

    def _days_before(self, n: int) -> datetime | None:
        """``now - n days``; None when that falls outside years 1-9999."""
        try:
            return self._now - n * DAY
        except OverflowError:
            return None

    def _stage(self, stage: str) -> Expr:
        lifecycle = self._evaluation.rules.lifecycle
        now = self._now
        last = self._last()
        if stage == "prospect":
            return last.is_(None)
        new = _leaf(self._first() >= self._time(now - lifecycle.new_within))
        if stage == "new":
            return new
        active = last >= self._time(now - lifecycle.active_within)
        dormant = last >= self._time(now - lifecycle.dormant_within)
        if stage == "active":
            return and_(not_(new), active)
        if stage == "dormant":
            return and_(not_(new), not_(active), dormant)
        return and_(not_(new), last.is_not(None), not_(dormant))

    def _time(self, value: datetime) -> Expr:
        return literal(value, UTCDateTime())


def _leaf(predicate: Expr) -> Expr:
    return func.coalesce(predicate, false())


def _as_time(value: Any) -> datetime:
    # Through a window function SQLite may hand back the stored text rather than a datetime.
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    assert isinstance(value, datetime)
    return value


def _as_decimal(value: Any) -> Decimal:
    return decimal(value if isinstance(value, Decimal | int) else float(value))


class _Json:
    """JSON access that keeps JSON's types apart (``typed`` is NULL for another type)."""

    @staticmethod
    def for_dialect(dialect: str) -> _Json:
        if dialect == "postgresql":
            return _PgJson()
        if dialect == "sqlite":
            return _SqliteJson()
        raise ValueError(f"unsupported database {dialect!r}")

    def present(self, col: Expr, key: str) -> Expr:
        raise NotImplementedError

    def typed(self, col: Expr, key: str, kind: str | None) -> Expr:
        raise NotImplementedError

    def number(self, col: Expr, key: str) -> Expr:
        return self.typed(col, key, "num")

    def bind(self, value: Any, kind: str | None) -> Expr:
        raise NotImplementedError

    def number_bind(self, value: int | float | Decimal) -> Expr:
        return self.bind(value, "num")

    def array_has(self, col: Expr, key: str, value: Any) -> Expr:
        raise NotImplementedError

    def substring(self, col: Expr, key: str, value: str) -> Expr:
        raise NotImplementedError

    def has_tag(self, tag: str) -> Expr:
        raise NotImplementedError

    def money_sum(self, values: Expr) -> Expr:
        raise NotImplementedError


class _SqliteJson(_Json):
    @staticmethod
    def _path(key: str) -> Expr:
        # Keys are validated names (no quotes); quoting keeps a '.' in a name from nesting.
        return literal(f'$."{key}"', String())

    def _type(self, col: Expr, key: str) -> Expr:
        return func.json_type(col, self._path(key))

    def present(self, col: Expr, key: str) -> Expr:
        return func.coalesce(self._type(col, key), "null") != "null"

    def typed(self, col: Expr, key: str, kind: str | None) -> Expr:
        kind_type = self._type(col, key)
        value = func.json_extract(col, self._path(key))
        if kind == "num":
            return case((kind_type.in_(("integer", "real")), value))
        if kind == "str":
            return case((kind_type == "text", value))
        if kind == "bool":
            return case((kind_type == "true", 1), (kind_type == "false", 0))
        return literal(None)

    def bind(self, value: Any, kind: str | None) -> Expr:
        if kind == "bool":
            return literal(1 if value else 0)
        if isinstance(value, Decimal):
            value = float(value)
        return literal(value, String()) if kind == "str" else literal(value)

    def array_has(self, col: Expr, key: str, value: Any) -> Expr:
        items = func.json_each(col, self._path(key)).table_valued("value", "type").alias("item")
        kind = kind_of(value)
        if kind == "num":
            same = and_(items.c.type.in_(("integer", "real")), items.c.value == literal(value))
        elif kind == "str":
            same = and_(items.c.type == "text", items.c.value == literal(value, String()))
        else:
            same = items.c.type == ("true" if value else "false")
        found = exists(select(literal(1)).select_from(items).where(same))
        return case((self._type(col, key) == "array", found), else_=false())

    def substring(self, col: Expr, key: str, value: str) -> Expr:
        return func.instr(self.typed(col, key, "str"), literal(value, String())) > 0

    def has_tag(self, tag: str) -> Expr:
        items = func.json_each(profiles.c.tags).table_valued("value", "type").alias("tag")
        return exists(
            select(literal(1))
            .select_from(items)
            .where(items.c.type == "text", items.c.value == literal(tag, String()))
        )

    def money_sum(self, values: Expr) -> Expr:
        return func.round(func.total(values), 6)


class _PgJson(_Json):
    @staticmethod
    def _get(col: Expr, key: str) -> Expr:
        return col.op("->", return_type=JSONB())(literal(key, Text()))

    @staticmethod
    def _text(col: Expr, key: str) -> Expr:
        return col.op("->>", return_type=Text())(literal(key, Text()))

    def _type(self, col: Expr, key: str) -> Expr:
        return func.jsonb_typeof(self._get(col, key))

    def present(self, col: Expr, key: str) -> Expr:
        return func.coalesce(self._type(col, key), "null") != "null"

    def typed(self, col: Expr, key: str, kind: str | None) -> Expr:
        kind_type = self._type(col, key)
        text = self._text(col, key)
        if kind == "num":
            # CASE, not AND: PostgreSQL may evaluate either side of AND first, and casting
            # text that is not a number raises.
            return case((kind_type == "number", cast(text, Numeric())))
        if kind == "str":
            return case((kind_type == "string", text)).collate("C")
        if kind == "bool":
            return case((kind_type == "boolean", cast(text, Boolean())))
        return literal(None)

    def bind(self, value: Any, kind: str | None) -> Expr:
        if kind == "bool":
            return literal(bool(value), Boolean())
        if kind == "str":
            return literal(value, Text())
        return literal(decimal(value), Numeric())

    def array_has(self, col: Expr, key: str, value: Any) -> Expr:
        element = self._get(col, key)
        items = func.jsonb_array_elements(element).table_valued("value").alias("item")
        # jsonb equality keeps types apart (1 = 1.0, but true <> 1 and "1" <> 1), as Python does.
        wanted = cast(literal(json.dumps(value), Text()), JSONB())
        found = exists(select(literal(1)).select_from(items).where(items.c.value == wanted))
        return case((func.jsonb_typeof(element) == "array", found), else_=false())

    def substring(self, col: Expr, key: str, value: str) -> Expr:
        return func.strpos(self.typed(col, key, "str"), literal(value, Text())) > 0

    def has_tag(self, tag: str) -> Expr:
        return profiles.c.tags.op("@>", return_type=Boolean())(
            func.jsonb_build_array(literal(tag, Text()))
        )

    def money_sum(self, values: Expr) -> Expr:
        return func.round(func.coalesce(func.sum(values), 0), 6)


__all__: Sequence[str] = ("SqlCompiler", "members_query", "population_cuts", "prepare")
