"""The condition language: one structured form, no string expressions, no ``eval``.

    {attribute: cart_value, gte: 200}        comparison on a profile attribute
    {tag: vip}                               the profile carries the tag
    {event: cart_added, within: 1d}          did it at least once in the last day
    {event: order_paid, within: 1d, count: {eq: 0}}          ... did not (same as {not: ...})
    {event: cart_added, within: 7d, count: {gte: 3}}         count of events in a window
    {event: order_paid, within: 90d, sum: amount, gte: 500}  sum of a numeric event property
    {rfm: recency, between: [60, 120]}       whole days since the last purchase
    {rfm: frequency, gte: 3}                 purchases in the RFM window (tiers.yaml `rfm`)
    {rfm: monetary, gte: 500}                spend in the RFM window
    {rfm: recency_score, gte: 4}             quintile scores 1-5 (also frequency_/monetary_score)
    {lifecycle: dormant}                     prospect | new | active | dormant | churned (or a list)
    {tier: gold}                             member tier from tiers.yaml (or a list of tiers)
    {all: [...]} / {any: [...]} / {not: {...}}

Windows are evaluated at an evaluation time ``now`` given by the caller (a schedule's fire time, the
workflow's time, ``--today`` for an import): ``within: 1d`` counts events with
``now - 1d <= occurred_at < now``; without ``within`` every event before ``now`` counts. Events
at or after ``now`` never count, so evaluating "as of" a past date ignores later history.

What a "purchase" is (event name and amount property), the RFM window, the lifecycle thresholds
and the tier rules live in ``journeys/tiers.yaml`` (`engine.dsl.tiers`).

The same model is evaluated in Python for one person (`engine.conditions.python`) and compiled to
SQL for every profile (`engine.conditions.sql`); both follow SQL's rule that a comparison with a
missing attribute, or with a value of another type, is false (use ``exists`` to test presence),
and a property test holds them to agreeing on every profile.

Numbers written in conditions must be finite and at most 2^53 in size (beyond that SQLite,
PostgreSQL and Python round differently); text may not contain NUL characters (PostgreSQL cannot
store them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from engine.dsl.base import (
    SLUG_PATTERN,
    AttributeName,
    Slug,
    Strict,
    exactly_one,
    given,
    not_given,
)
from engine.dsl.durations import Duration

Scalar = str | int | float | bool
Number = int | float

COMPARISONS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "contains",
    "exists",
    "between",
)
NUMERIC_COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")

CONDITION_KINDS = ("attribute", "tag", "event", "rfm", "lifecycle", "tier", "all", "any", "not")
"""The keys that say which kind a condition is (exactly one per condition)."""

CONDITION_KEYS = (*COMPARISONS, "within", "count", "sum")
"""Other keys a condition may carry beside its kind key."""

MAX_NUMBER = 2**53
LONGEST_WINDOW = timedelta(days=3660)

RfmMetric = Literal[
    "recency", "frequency", "monetary", "recency_score", "frequency_score", "monetary_score"
]
RFM_METRICS: tuple[str, ...] = (
    "recency",
    "frequency",
    "monetary",
    "recency_score",
    "frequency_score",
    "monetary_score",
)
Stage = Literal["prospect", "new", "active", "dormant", "churned"]
STAGES: tuple[str, ...] = ("prospect", "new", "active", "dormant", "churned")


def check_value(value: Any) -> Any:
    """Refuse the operands the backends cannot agree on (see the module docstring)."""
    if isinstance(value, list | tuple):
        for item in value:
            check_value(item)
    elif isinstance(value, bool):
        pass
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    elif isinstance(value, int | float) and abs(value) > MAX_NUMBER:
        raise ValueError(f"numbers in conditions are at most 2^53 ({MAX_NUMBER}) in size")
    elif isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text in a condition cannot contain the NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text in a condition must be valid Unicode") from None
    return value


_NUMBER_JSON: dict[str, Any] = {"type": "number", "minimum": -MAX_NUMBER, "maximum": MAX_NUMBER}
_TEXT_JSON: dict[str, Any] = {"type": "string", "pattern": "^[^\\u0000]*$"}
ScalarValue = Annotated[
    Scalar, WithJsonSchema({"anyOf": [_TEXT_JSON, _NUMBER_JSON, {"type": "boolean"}]})
]
"""A value a condition compares with: text, a number (at most 2^53) or true / false."""
Ordered = Annotated[
    StrictInt | StrictFloat | str, WithJsonSchema({"anyOf": [_NUMBER_JSON, _TEXT_JSON]})
]
"""A value with an order: a number or text (dates as ISO text compare in order)."""
NumberValue = Annotated[StrictInt | StrictFloat, WithJsonSchema(_NUMBER_JSON)]
"""A number in a condition: finite, at most 2^53 in size."""


class AttributeCondition(Strict):
    """Compare one profile attribute with exactly one operator, e.g.
    ``{attribute: cart_value, gte: 200}``. A missing attribute, or a value of another type, makes
    every comparison false (test presence with ``exists``)."""

    model_config = ConfigDict(
        json_schema_extra=exactly_one(COMPARISONS),
    )

    attribute: AttributeName
    """The profile attribute, e.g. cart_value, city, days_since_last_order."""
    eq: ScalarValue | None = None
    """Equal to this value."""
    ne: ScalarValue | None = None
    """Not equal to this value (false when the attribute is missing)."""
    gt: Ordered | None = None
    """Greater than this number (or text, in text order)."""
    gte: Ordered | None = None
    """Greater than or equal to this number (or text)."""
    lt: Ordered | None = None
    """Less than this number (or text)."""
    lte: Ordered | None = None
    """Less than or equal to this number (or text)."""
    in_: list[ScalarValue] | None = Field(None, alias="in", min_length=1)
    """One of these values, e.g. [shanghai, beijing]."""
    not_in: list[ScalarValue] | None = Field(None, min_length=1)
    """None of these values (false when the attribute is missing)."""
    contains: ScalarValue | None = None
    """A list attribute holding this value, or a text attribute containing this text."""
    exists: StrictBool | None = None
    """true: the attribute is set; false: it is missing."""
    between: tuple[Ordered, Ordered] | None = None
    """Between two values, both included: [low, high], e.g. [60, 120]."""

    @field_validator("between", mode="before")
    @classmethod
    def _two_bounds(cls, value: Any) -> Any:
        # Otherwise `between: [60]` reads as "missing item 1", which a marketer cannot act on.
        if value is not None and (not isinstance(value, list | tuple) or len(value) != 2):
            raise ValueError(f"between takes two values [low, high], got {value!r}")
        return value

    @field_validator("eq", "ne", "gt", "gte", "lt", "lte", "in_", "not_in", "contains", "between")
    @classmethod
    def _sane(cls, value: Any) -> Any:
        return check_value(value)

    @model_validator(mode="after")
    def _one_operator(self) -> AttributeCondition:
        given = [op for op in COMPARISONS if self.operand(op) is not None]
        if len(given) != 1:
            raise ValueError(
                f"an attribute condition takes exactly one operator of {', '.join(COMPARISONS)}; "
                f"got {len(given)}" + (f" ({', '.join(given)})" if given else "")
            )
        return self

    def operand(self, op: str) -> Any:
        return getattr(self, "in_" if op == "in" else op)

    @property
    def operator(self) -> str:
        return next(op for op in COMPARISONS if self.operand(op) is not None)


class TagCondition(Strict):
    """True when the profile carries the tag, e.g. ``{tag: vip}``."""

    tag: Annotated[str, Field(min_length=1, max_length=64, json_schema_extra=_TEXT_JSON)]
    """The tag, e.g. vip or fruit_lover."""

    @field_validator("tag")
    @classmethod
    def _sane(cls, value: str) -> str:
        return str(check_value(value))


class NumericComparison(Strict):
    """Exactly one of eq, ne, gt, gte, lt, lte, between, on a number."""

    eq: NumberValue | None = None
    """Equal to this number."""
    ne: NumberValue | None = None
    """Not equal to this number."""
    gt: NumberValue | None = None
    """Greater than this number."""
    gte: NumberValue | None = None
    """Greater than or equal to this number."""
    lt: NumberValue | None = None
    """Less than this number."""
    lte: NumberValue | None = None
    """Less than or equal to this number."""
    between: tuple[NumberValue, NumberValue] | None = None
    """Between two numbers, both included: [low, high], e.g. [60, 120]."""

    @field_validator("between", mode="before")
    @classmethod
    def _two_bounds(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, list | tuple) or len(value) != 2):
            raise ValueError(f"between takes two values [low, high], got {value!r}")
        return value

    @field_validator("eq", "ne", "gt", "gte", "lt", "lte", "between", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        # YAML `true` would otherwise be read as 1.
        items = value if isinstance(value, list | tuple) else [value]
        if any(isinstance(v, bool) for v in items):
            raise ValueError(f"expected a number, got {value!r}")
        return check_value(value)

    def given(self) -> list[str]:
        return [op for op in NUMERIC_COMPARISONS if getattr(self, op) is not None]

    @property
    def operator(self) -> str:
        return self.given()[0]

    @property
    def operand(self) -> Any:
        return getattr(self, self.operator)


class Count(NumericComparison):
    """How many events in the window, with exactly one comparison: ``count: {gte: 3}``
    (``count: {eq: 0}``: none)."""

    model_config = ConfigDict(json_schema_extra=exactly_one(NUMERIC_COMPARISONS))

    @model_validator(mode="after")
    def _one_operator(self) -> Count:
        given = self.given()
        if len(given) != 1:
            raise ValueError(
                "count takes exactly one operator of "
                f"{', '.join(NUMERIC_COMPARISONS)}; got {len(given)}"
            )
        return self


class EventCondition(NumericComparison):
    """Events named ``event`` in the window: their count, or the sum of a numeric property.

    ``count: {...}`` compares the count; ``sum: PROPERTY`` with one comparison beside it (``gte:
    500``) compares the sum (non-numeric or missing values count as 0); neither means "at least
    once". E.g. ``{event: order_paid, within: 90d, sum: amount, gte: 500}``.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "if": given("sum"),
            "then": {**exactly_one(NUMERIC_COMPARISONS), **not_given("count")},
            "else": not_given(*NUMERIC_COMPARISONS),
        }
    )

    event: AttributeName
    """The event name, e.g. order_paid or cart_added."""
    within: Duration | None = None
    """The window before now, e.g. 7d (at most 3660d); absent: all history."""
    count: Count | None = None
    """Compare the number of events, e.g. {gte: 3}; absent (and no sum): at least once."""
    sum: AttributeName | None = None
    """Compare the sum of this event property (with one comparison beside it, e.g. gte: 500)."""

    @field_validator("within")
    @classmethod
    def _window(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value > LONGEST_WINDOW:
            raise ValueError("a window is at most 3660d (about ten years)")
        return value

    @model_validator(mode="after")
    def _shape(self) -> EventCondition:
        given = self.given()
        if self.count is not None and self.sum is not None:
            raise ValueError("an event condition takes count or sum, not both")
        if self.sum is not None and len(given) != 1:
            raise ValueError(
                "sum takes exactly one comparison beside it "
                f"({', '.join(NUMERIC_COMPARISONS)}), e.g. sum: amount, gte: 500"
            )
        if self.sum is None and given:
            raise ValueError(
                f"'{given[0]}' beside an event compares a sum: add sum: PROPERTY, "
                f"or compare the count with count: {{{given[0]}: ...}}"
            )
        return self

    @property
    def measure(self) -> NumericComparison:
        """The comparison to apply: on the sum, on the count, or ``count >= 1``."""
        if self.sum is not None:
            return self
        return self.count or Count(gte=1)


_WHOLE_METRICS = ("recency", "recency_score", "frequency_score", "monetary_score")
_WHOLE_JSON: dict[str, Any] = {"anyOf": [{"type": "integer"}, {"type": "null"}]}


class RfmCondition(NumericComparison):
    """A derived purchase metric with one comparison, e.g. ``{rfm: recency, between: [60, 120]}``
    (see `engine.dsl.tiers.Tiers` for what a purchase is).

    recency: whole days since the last purchase; frequency / monetary: purchases and spend in
    the RFM window; ``*_score``: quintiles 1-5 over every buyer at evaluation time (5 = most
    recent, most frequent, highest spend). People who never bought have no RFM values: every
    comparison on them is false.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                exactly_one(NUMERIC_COMPARISONS),
                {
                    "if": {"properties": {"rfm": {"enum": list(_WHOLE_METRICS)}}},
                    "then": {
                        "properties": {
                            **{op: _WHOLE_JSON for op in NUMERIC_COMPARISONS if op != "between"},
                            "between": {"items": {"type": "integer"}},
                        }
                    },
                },
            ]
        }
    )

    rfm: RfmMetric
    """recency (days since the last purchase), frequency, monetary, or a 1-5 score."""

    @model_validator(mode="after")
    def _one_operator(self) -> RfmCondition:
        given = self.given()
        if len(given) != 1:
            raise ValueError(
                "an rfm condition takes exactly one operator of "
                f"{', '.join(NUMERIC_COMPARISONS)}; got {len(given)}"
            )
        if self.rfm in _WHOLE_METRICS:
            operand = self.operand
            values = operand if isinstance(operand, tuple) else (operand,)
            if any(not isinstance(v, int) for v in values):
                raise ValueError(f"{self.rfm} is a whole number: compare it with whole numbers")
        return self


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _one_or_many_json(item: dict[str, Any]) -> WithJsonSchema:
    """The short form too: ``{tier: gold}`` as well as ``{tier: [gold, silver]}``."""
    return WithJsonSchema({"anyOf": [item, {"type": "array", "items": item, "minItems": 1}]})


class LifecycleCondition(Strict):
    """The person's lifecycle stage (thresholds in tiers.yaml ``lifecycle``), e.g.
    ``{lifecycle: dormant}``; a list means any of them: ``{lifecycle: [new, active]}``."""

    lifecycle: Annotated[
        list[Stage],
        Field(min_length=1),
        _one_or_many_json({"type": "string", "enum": list(STAGES)}),
    ]
    """prospect (never bought), new, active, dormant or churned; or a list of them."""

    @field_validator("lifecycle", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        return _one_or_many(value)


class TierCondition(Strict):
    """The person's member tier (rules in tiers.yaml), e.g. ``{tier: gold}``; a list means any of
    those tiers: ``{tier: [gold, diamond]}``."""

    tier: Annotated[
        list[Slug],
        Field(min_length=1),
        _one_or_many_json({"type": "string", "pattern": SLUG_PATTERN}),
    ]
    """A tier id of tiers.yaml, e.g. gold; or a list of them."""

    @field_validator("tier", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        return _one_or_many(value)


class AllCondition(Strict):
    """True when every condition of the list is: ``{all: [..., ...]}``."""

    all: list[Condition] = Field(min_length=1)
    """The conditions that must all hold."""


class AnyCondition(Strict):
    """True when at least one condition of the list is: ``{any: [..., ...]}``."""

    any: list[Condition] = Field(min_length=1)
    """The conditions of which one is enough."""


class NotCondition(Strict):
    """True when the condition is not: ``{not: {tag: vip}}``."""

    not_: Condition = Field(alias="not")
    """The condition to negate."""


_KINDS = {kind: kind for kind in CONDITION_KINDS} | {"not_": "not"}
_CLASSES: dict[type, str] = {
    AttributeCondition: "attribute",
    TagCondition: "tag",
    EventCondition: "event",
    RfmCondition: "rfm",
    LifecycleCondition: "lifecycle",
    TierCondition: "tier",
    AllCondition: "all",
    AnyCondition: "any",
    NotCondition: "not",
}


def _condition_kind(value: Any) -> str | None:
    if type(value) in _CLASSES:
        return _CLASSES[type(value)]
    keys: Iterable[Any] = value.keys() if isinstance(value, dict) else ()
    for key in keys:
        if key in _KINDS:
            return _KINDS[key]
    return None


Condition = Annotated[
    Annotated[AttributeCondition, Tag("attribute")]
    | Annotated[TagCondition, Tag("tag")]
    | Annotated[EventCondition, Tag("event")]
    | Annotated[RfmCondition, Tag("rfm")]
    | Annotated[LifecycleCondition, Tag("lifecycle")]
    | Annotated[TierCondition, Tag("tier")]
    | Annotated[AllCondition, Tag("all")]
    | Annotated[AnyCondition, Tag("any")]
    | Annotated[NotCondition, Tag("not")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition_kind",
        custom_error_message=(
            "expected a condition: one of the keys " + ", ".join(CONDITION_KINDS)
        ),
    ),
]

ConditionKind = Literal[
    "attribute", "tag", "event", "rfm", "lifecycle", "tier", "all", "any", "not"
]

AllCondition.model_rebuild()
AnyCondition.model_rebuild()
NotCondition.model_rebuild()


def walk(condition: Condition) -> Iterable[Condition]:
    """``condition`` and every condition nested in it, depth first."""
    yield condition
    if isinstance(condition, AllCondition):
        for inner in condition.all:
            yield from walk(inner)
    elif isinstance(condition, AnyCondition):
        for inner in condition.any:
            yield from walk(inner)
    elif isinstance(condition, NotCondition):
        yield from walk(condition.not_)
