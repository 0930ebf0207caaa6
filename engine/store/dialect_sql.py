"""SQL expressions the analytics queries spell differently on SQLite and PostgreSQL: time
arithmetic, a day, a numeric JSON property, JSON arrays and objects as rows.

SQLite keeps timestamps as fixed-width UTC text (``YYYY-MM-DD HH:MM:SS.ffffff``, see
``columns.UTCDateTime``), so a shifted time is written back in that same shape and compares as
text, exactly, to the microsecond.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Float, Numeric, String, Text, case, cast, func, literal, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import TableValuedAlias

Expr = ColumnElement[Any]


def shifted(dialect: str, column: Expr, delta: timedelta) -> Expr:
    """``column + delta`` as a timestamp of the column's own kind (whole seconds only)."""
    seconds = int(delta.total_seconds())
    if seconds != delta.total_seconds():
        raise ValueError(f"a window of whole seconds is expected, got {delta}")
    if dialect == "postgresql":
        return column + literal(timedelta(seconds=seconds))
    moved = func.strftime("%Y-%m-%d %H:%M:%S", column, f"{seconds:+d} seconds")
    return moved.op("||")(func.substr(column, 20))


def day(dialect: str, column: Expr) -> Expr:
    """The UTC day of a timestamp, as ``YYYY-MM-DD`` text."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)


def number(dialect: str, column: Expr, key: str) -> Expr:
    """The JSON property ``key`` of ``column`` when it is a number (not a boolean), else NULL."""
    if dialect == "postgresql":
        element = column.op("->", return_type=JSONB())(literal(key, Text()))
        text = column.op("->>", return_type=Text())(literal(key, Text()))
        return case((func.jsonb_typeof(element) == "number", cast(text, Numeric())))
    path = literal(f'$."{key}"', String())
    return case(
        (func.json_type(column, path).in_(("integer", "real")), func.json_extract(column, path))
    )


def as_float(value: Expr) -> Expr:
    return cast(value, Float())


def array_items(dialect: str, column: Expr, name: str) -> TableValuedAlias:
    """A JSON array's elements as rows with a text column ``value`` (join it ``ON true``; both
    databases let a function in FROM read the tables before it)."""
    if dialect == "postgresql":
        return func.jsonb_array_elements_text(column).table_valued("value").alias(name)
    return func.json_each(column).table_valued("value").alias(name)


def object_items(dialect: str, column: Expr, name: str) -> TableValuedAlias:
    """A JSON object's members as rows with text columns ``key`` and ``value``."""
    if dialect == "postgresql":
        return func.jsonb_each_text(column).table_valued("key", "value").alias(name)
    return func.json_each(column).table_valued("key", "value").alias(name)


async def for_aggregates(conn: AsyncConnection) -> None:
    """Set up a transaction that runs the report's aggregates.

    PostgreSQL's JIT compiler judges these statements expensive enough to compile, then spends
    most of their time compiling: 2.1 s of 2.8 s for the channel-by-stage aggregate over 20,000
    runs. The aggregates run faster interpreted, so JIT is off for this transaction only."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SET LOCAL jit = off"))
