"""Hostile input is harmless: values reach the database only as bound parameters, and what the
language cannot represent is a DslError located at file:line:col, before any SQL runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import TypeAdapter
from sqlalchemy import func, select

from engine.conditions.context import Evaluation
from engine.conditions.python import Person, evaluate
from engine.conditions.sql import SqlCompiler, members_query
from engine.domain import Event, Profile
from engine.dsl.conditions import Condition
from engine.dsl.errors import DslError
from engine.dsl.loader import load_segment, load_tiers
from engine.store import Store
from engine.store.tables import events, profiles
from tests.conditions.conftest import clean

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONDITION = TypeAdapter[Condition](Condition)
HOSTILE = [
    "Robert'); DROP TABLE profiles;--",
    "\" ' ` \\ \\\\ %s %(x)s ? :name $1 $.a[0] */ /*",
    "张三 🎉 ñ é ü ﷽ \u202eevil\u202c \u200b",
    "line\nbreak\ttab\r\n",
    "' OR '1'='1",
    "x" * 5000 + "'\"" + "字" * 5000,  # 10 kB and more in UTF-8
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_values_are_only_data(db: Store, value: str) -> None:
    await clean(db)
    people = [
        Profile("match", {"name": value, "notes": [value, 1]}, frozenset({value[:64]})),
        Profile("other", {"name": value + "!", "notes": ["x"]}, frozenset({"plain"})),
    ]
    await db.upsert_profiles(people)
    await db.record_events([Event("e1", "match", "order_paid", NOW.replace(year=2025), {})])
    raw_conditions = [
        {"attribute": "name", "eq": value},
        {"attribute": "name", "in": [value, "nobody"]},
        {"attribute": "notes", "contains": value},
        {"attribute": "name", "lte": value},
        {"tag": value[:64]},
        {
            "all": [
                {"attribute": "name", "contains": value},
                {"not": {"attribute": "name", "ne": value}},
            ]
        },
    ]
    evaluation = Evaluation(now=NOW)
    compiler = SqlCompiler(db.dialect, evaluation)
    for raw in raw_conditions:
        condition = CONDITION.validate_python(raw)
        async with db.engine.connect() as conn:
            found = list((await conn.execute(members_query(compiler.where(condition)))).scalars())
        assert found == ["match"], raw
        assert [p.id for p in people if evaluate(condition, Person(p), evaluation)] == ["match"]
    async with db.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(profiles))).scalar() == 2
        assert (await conn.execute(select(func.count()).select_from(events))).scalar() == 1


def _segment(tmp_path: Path, condition: str) -> DslError:
    path = tmp_path / "segments" / "s.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"id: s\nname: S\ncondition:\n  {condition}\n", encoding="utf-8")
    with pytest.raises(DslError) as caught:
        load_segment(path)
    return caught.value


@pytest.mark.parametrize(
    ("condition", "column", "says"),
    [
        ('{attribute: "a\'; DROP TABLE profiles;--", eq: 1}', 15, "expected a name"),
        ('{attribute: "名字", eq: 1}', 15, "expected a name"),
        ("{attribute: a, eq: .nan}", 22, "finite number"),
        ("{attribute: a, gte: 99999999999999999999}", 23, "at most 2^53"),
        ('{attribute: a, eq: "nul\\0"}', 22, "NUL"),
        ("{event: order_paid, within: 1x}", 31, "duration"),
        ("{event: order_paid, gte: 5}", 3, "add sum: PROPERTY"),
        ("{event: order_paid, sum: amount, gte: 5, lt: 9}", 3, "exactly one comparison"),
        ("{event: order_paid, count: {gte: true}}", 36, "expected a number"),
        ("{rfm: loyalty, gte: 1}", 9, "'recency'"),
        ("{rfm: recency, gte: 1.5}", 3, "whole number"),
        ("{lifecycle: sleeping}", 15, "'prospect'"),
        ("{tier: Gold!}", 10, "lower-case"),
        ("{tiers: gold}", 4, "unknown key 'tiers'"),
    ],
)
def test_bad_conditions_are_located_dsl_errors(
    tmp_path: Path, condition: str, column: int, says: str
) -> None:
    error = _segment(tmp_path, condition)
    [problem] = error.problems
    assert (problem.line, problem.column) == (4, column), str(problem)
    assert says in problem.message, str(problem)
    assert problem.file.endswith("s.yaml")


def test_a_tier_may_not_name_tiers(tmp_path: Path) -> None:
    path = tmp_path / "tiers.yaml"
    path.write_text(
        "tiers:\n  - id: gold\n    when: {tier: silver}\n  - id: gold\n    when: {tag: x}\n",
        encoding="utf-8",
    )
    with pytest.raises(DslError) as caught:
        load_tiers(path)
    messages = [(p.line, p.message) for p in caught.value.problems]
    assert any(line == 3 and "cannot depend on tiers" in m for line, m in messages), messages
