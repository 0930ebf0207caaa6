"""``column IN (...)`` that stays cheap for the long lists of batch operations.

On PostgreSQL a list of 500 ids as 500 bind parameters costs several milliseconds to send and
plan; one array parameter (``column = ANY(:ids)``) costs a fraction of that. SQLite has no
arrays: `among` sends one JSON array (``column IN (SELECT value FROM json_each(:ids))``, which
still searches the column's index), where 500 bind parameters cost SQLAlchemy about a
millisecond to render per statement; `among_param` keeps the IN list (callers chunk it below
the bind-parameter limit).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnClause


def among(column: ColumnClause[Any], values: Collection[str], dialect: str) -> ColumnElement[bool]:
    """``column`` is one of the strings ``values``."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(String())))
    ids = json.dumps(list(values), ensure_ascii=False)
    return column.in_(
        select(func.json_each(bindparam(None, ids, type_=String())).table_valued("value").c.value)
    )


def among_param(column: ColumnClause[Any], name: str, dialect: str) -> ColumnElement[bool]:
    """``column`` is one of the strings given at execution as ``{name: [...]}``: the statement
    can be built once and cached, its values bound per call."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(String())))
    return column.in_(bindparam(name, expanding=True))
