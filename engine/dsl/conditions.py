"""The condition language: one structured form, no string expressions, no ``eval``.

    {attribute: cart_value, gte: 200}        comparison on a profile attribute
    {tag: vip}                               the profile carries the tag
    {all: [...]} / {any: [...]} / {not: {...}}

The same model is evaluated in Python for one profile (`engine.conditions.python`) and, for
segments, compiled to SQL; both follow SQL's rule that a comparison with a missing attribute is
false (use ``exists`` to test presence).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from engine.dsl.base import AttributeName, Strict

Scalar = str | int | float | bool

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


class AttributeCondition(Strict):
    """Compare one profile attribute; exactly one operator."""

    attribute: AttributeName
    eq: Scalar | None = None
    ne: Scalar | None = None
    gt: int | float | str | None = None
    gte: int | float | str | None = None
    lt: int | float | str | None = None
    lte: int | float | str | None = None
    in_: list[Scalar] | None = Field(None, alias="in", min_length=1)
    not_in: list[Scalar] | None = Field(None, min_length=1)
    contains: Scalar | None = None
    exists: bool | None = None
    between: tuple[int | float | str, int | float | str] | None = None

    @field_validator("between", mode="before")
    @classmethod
    def _two_bounds(cls, value: Any) -> Any:
        # Otherwise `between: [60]` reads as "missing item 1", which a marketer cannot act on.
        if value is not None and (not isinstance(value, list | tuple) or len(value) != 2):
            raise ValueError(f"between takes two values [low, high], got {value!r}")
        return value

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
    """True when the profile carries ``tag``."""

    tag: Annotated[str, Field(min_length=1, max_length=64)]


class AllCondition(Strict):
    all: list[Condition] = Field(min_length=1)


class AnyCondition(Strict):
    any: list[Condition] = Field(min_length=1)


class NotCondition(Strict):
    not_: Condition = Field(alias="not")


_KINDS = {
    "attribute": "attribute",
    "tag": "tag",
    "all": "all",
    "any": "any",
    "not": "not",
    "not_": "not",
}


def _condition_kind(value: Any) -> str | None:
    keys: Iterable[Any]
    if isinstance(value, dict):
        keys = value.keys()
    else:
        keys = {k for k in _KINDS if getattr(value, k, None) is not None}
    for key in keys:
        if key in _KINDS:
            return _KINDS[key]
    return None


Condition = Annotated[
    Annotated[AttributeCondition, Tag("attribute")]
    | Annotated[TagCondition, Tag("tag")]
    | Annotated[AllCondition, Tag("all")]
    | Annotated[AnyCondition, Tag("any")]
    | Annotated[NotCondition, Tag("not")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition_kind",
        custom_error_message="expected a condition: one of the keys attribute, tag, all, any, not",
    ),
]

ConditionKind = Literal["attribute", "tag", "all", "any", "not"]

AllCondition.model_rebuild()
AnyCondition.model_rebuild()
NotCondition.model_rebuild()
