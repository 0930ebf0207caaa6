"""SQL and Python evaluate every condition alike, on every profile, on SQLite and PostgreSQL.

Hypothesis draws a small population (attributes of every JSON type, tags, events placed on and
around window edges, before and after "now") and a batch of conditions of every kind; the SQL
compilation's members must be exactly the profiles the Python evaluator accepts. The RFM cut
points the SQL computes must equal those computed in Python from the same data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from engine.conditions.context import Evaluation
from engine.conditions.metrics import cuts_of
from engine.conditions.python import Person, PersonEvent, evaluate, purchase_facts
from engine.conditions.sql import SqlCompiler, members_query, population_cuts
from engine.domain import Event, Profile
from engine.dsl.conditions import COMPARISONS, Condition
from engine.dsl.tiers import Tiers
from engine.store import Store
from tests.conditions.conftest import clean

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONDITION = TypeAdapter[Condition](Condition)

RULES = Tiers.model_validate(
    {
        "purchase": {"event": "order_paid", "amount": "amount"},
        "rfm": {"window": "200d"},
        "lifecycle": {"new_within": "30d", "active_within": "60d", "dormant_within": "120d"},
        "tiers": [
            {"id": "top", "when": {"rfm": "monetary_score", "gte": 5}},
            {
                "id": "mid",
                "when": {
                    "any": [
                        {"event": "order_paid", "within": "30d", "sum": "amount", "gte": 10},
                        {"attribute": "stored_value", "gte": 1},
                    ]
                },
            },
            {"id": "low", "when": {"event": "order_paid"}},
        ],
    }
)

KEYS = ["a", "b", "c.d", "stored_value"]
TEXTS = ["", "a", "B", "ab", "b", "张三", "O'Brien", '"; DROP TABLE profiles;--', "🎉", "a%_"]
NUMBERS = [-3, 0, 1, 2, 10, 0.1, 0.2, 0.3, 1.0, 2.5, -0.5, 9.99, 100]
ORDERED = st.sampled_from(TEXTS) | st.sampled_from(NUMBERS)
SCALARS = ORDERED | st.booleans()
VALUES = (
    st.none()
    | SCALARS
    | st.lists(SCALARS, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "x"]), SCALARS, max_size=2)
)
TAGS = ["vip", "x", "q'uote", "新客"]
NAMES = ["order_paid", "cart_added"]
AMOUNTS = st.none() | st.sampled_from([0, 1, 2.5, 10, 0.1, 0.2, 9.99, 0.01, -1, "12", True])
# Offsets before now, on and around the edges of the windows used below (negative: after now).
EDGES = [0, 1, 7, 29, 30, 59, 60, 61, 119, 120, 121, 199, 200, 365]
NUDGES = [timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1), timedelta(hours=5)]
OFFSETS = st.builds(
    lambda days, nudge: timedelta(days=days) + nudge,
    st.sampled_from([*EDGES, -1]),
    st.sampled_from(NUDGES),
)
WITHIN = st.sampled_from(["1d", "7d", "30d", "60d", "120d", "200d"])
INTS = st.sampled_from([-1, 0, 1, 2, 3, 5, 6, 7, 29, 30, 31, 60, 61, 119, 120, 121, 200])
NUMS = INTS | st.sampled_from([0.3, 2.5, 10, 10.01, 12.5, 0.01, 9.99])


@st.composite
def people(draw: st.DrawFn) -> list[Person]:
    count = draw(st.integers(0, 10))
    found = []
    for index in range(count):
        attributes = {k: v for k in KEYS if (v := draw(VALUES)) is not None or draw(st.booleans())}
        profile = Profile(
            id=f"p{index:02d}",
            attributes=attributes,
            tags=frozenset(draw(st.sets(st.sampled_from(TAGS), max_size=2))),
        )
        events = []
        for _ in range(draw(st.integers(0, 5))):
            amount = draw(AMOUNTS)
            events.append(
                PersonEvent(
                    name=draw(st.sampled_from(NAMES)),
                    occurred_at=NOW - draw(OFFSETS),
                    properties={} if amount is None else {"amount": amount},
                )
            )
        found.append(Person(profile, events))
    return found


def comparison(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    single = st.builds(
        lambda op, v: {op: v}, st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]), values
    )
    between = st.builds(lambda a, b: {"between": [a, b]}, values, values)
    return single | between


@st.composite
def attribute_condition(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(COMPARISONS))
    key = draw(st.sampled_from(KEYS))
    if op == "exists":
        operand: Any = draw(st.booleans())
    elif op in ("in", "not_in"):
        operand = draw(st.lists(SCALARS, min_size=1, max_size=3))
    elif op == "between":
        operand = [draw(ORDERED) for _ in range(2)]
    elif op in ("gt", "gte", "lt", "lte"):
        operand = draw(ORDERED)
    else:
        operand = draw(SCALARS)
    return {"attribute": key, op: operand}


def event_condition() -> st.SearchStrategy[dict[str, Any]]:
    base = st.fixed_dictionaries({"event": st.sampled_from(NAMES)}, optional={"within": WITHIN})
    count = st.builds(lambda b, c: {**b, "count": c}, base, comparison(INTS))
    total = st.builds(lambda b, c: {**b, "sum": "amount", **c}, base, comparison(NUMS))
    return base | count | total


def rfm_condition() -> st.SearchStrategy[dict[str, Any]]:
    whole = st.builds(
        lambda m, c: {"rfm": m, **c},
        st.sampled_from(["recency", "recency_score", "frequency_score", "monetary_score"]),
        comparison(INTS),
    )
    numeric = st.builds(
        lambda m, c: {"rfm": m, **c}, st.sampled_from(["frequency", "monetary"]), comparison(NUMS)
    )
    return whole | numeric


LEAVES = (
    attribute_condition()
    | st.builds(lambda t: {"tag": t}, st.sampled_from(TAGS))
    | event_condition()
    | rfm_condition()
    | st.builds(
        lambda s: {"lifecycle": sorted(s)},
        st.sets(st.sampled_from(["prospect", "new", "active", "dormant", "churned"]), min_size=1),
    )
    | st.builds(
        lambda s: {"tier": sorted(s)}, st.sets(st.sampled_from(["top", "mid", "low"]), min_size=1)
    )
)
CONDITIONS = st.recursive(
    LEAVES,
    lambda inner: (
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3))
        | st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3))
        | st.builds(lambda x: {"not": x}, inner)
    ),
    max_leaves=5,
)


async def _load(store: Store, population: list[Person]) -> None:
    await clean(store)
    await store.upsert_profiles([p.profile for p in population])
    events = [
        Event(f"{p.profile.id}-{i}", p.profile.id, e.name, e.occurred_at, dict(e.properties))
        for p in population
        for i, e in enumerate(p.events)
    ]
    if events:
        await store.record_events(events)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(population=people(), conditions=st.lists(CONDITIONS, min_size=1, max_size=8))
async def test_sql_and_python_agree(
    db: Store, population: list[Person], conditions: list[dict[str, Any]]
) -> None:
    await _load(db, population)
    python_cuts = cuts_of(
        f
        for p in population
        if (f := purchase_facts(p, Evaluation(now=NOW, rules=RULES))) is not None
    )
    async with db.engine.connect() as conn:
        sql_cuts = await population_cuts(conn, db.dialect, NOW, RULES)
    assert sql_cuts == python_cuts
    evaluation = Evaluation(now=NOW, rules=RULES, cuts=python_cuts)
    compiler = SqlCompiler(db.dialect, evaluation)
    for raw in conditions:
        condition = CONDITION.validate_python(raw)
        expected = sorted(p.profile.id for p in population if evaluate(condition, p, evaluation))
        async with db.engine.connect() as conn:
            got = list((await conn.execute(members_query(compiler.where(condition)))).scalars())
        assert got == expected, raw


async def test_members_page_in_id_order(db: Store) -> None:
    population = [Person(Profile(f"p{i:03d}", {"n": i})) for i in range(25)]
    await _load(db, population)
    compiler = SqlCompiler(db.dialect, Evaluation(now=NOW))
    where = compiler.where(CONDITION.validate_python({"attribute": "n", "gte": 5}))
    pages: list[list[str]] = []
    after = None
    while True:
        async with db.engine.connect() as conn:
            page = list((await conn.execute(members_query(where, after=after, limit=7))).scalars())
        if not page:
            break
        pages.append(page)
        after = page[-1]
    assert [len(p) for p in pages] == [7, 7, 6]
    assert [pid for page in pages for pid in page] == [f"p{i:03d}" for i in range(5, 25)]
