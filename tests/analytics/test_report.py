"""The journey report read from a store seeded by hand: orders inside the goal window only,
revenue per variant, step and last touch, re-entry counted once, unknown sends, bad values.

Runs on SQLite and PostgreSQL (the aggregates are SQL of each dialect)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.analytics.model import Report
from engine.analytics.period import Period
from engine.analytics.report import build_report
from engine.analytics.text import format_report
from engine.domain import Delivery, Enrollment, Event, Profile
from engine.dsl.models import Journey
from engine.dsl.policy import Policy
from engine.dsl.tiers import Tiers
from engine.store import Store

pytestmark = pytest.mark.timeout(60)

T = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
H, D = timedelta(hours=1), timedelta(days=1)

JOURNEY = Journey.model_validate(
    {
        "id": "cart",
        "name": "cart recovery",
        "entry": {"api": True},
        "goal": {"event": "order_paid", "within": "7d", "value": "amount"},
        "steps": [
            {
                "id": "test",
                "split": [
                    {"variant": "A", "weight": 45, "goto": "copy_a"},
                    {"variant": "B", "weight": 45, "goto": "copy_b"},
                    {"variant": "holdout", "weight": 10, "goto": "done"},
                ],
            },
            {"id": "copy_a", "send": {"channel": "wecom", "template": "cart_a", "next": "pause"}},
            {"id": "copy_b", "send": {"channel": "sms", "template": "cart_b", "next": "pause"}},
            {"id": "pause", "wait": "1d"},
            {"id": "nudge", "send": {"channel": "email", "template": "last_call"}},
            {"id": "done", "exit": {}},
        ],
    }
)


def enrollment(
    eid: str, pid: str, variant: str, path: list[str], at: datetime = T, **kw: Any
) -> Enrollment:
    return Enrollment(
        id=eid,
        journey_id="cart",
        journey_version=1,
        profile_id=pid,
        entered_at=at,
        status=kw.get("status", "completed"),
        ended_at=kw.get("ended_at", at + 3 * D),
        exit_step="done",
        path=tuple(path),
        variants={"test": variant},
    )


def send(key: str, pid: str, step: str, at: datetime, status: str = "sent", **kw: Any) -> Delivery:
    channel, template = {
        "copy_a": ("wecom", "cart_a"),
        "copy_b": ("sms", "cart_b"),
        "nudge": ("email", "last_call"),
    }[step]
    return Delivery(
        send_key=key,
        journey_id="cart",
        journey_version=1,
        profile_id=pid,
        step_id=step,
        channel=channel,
        template=template,
        category="marketing",
        status=status,  # type: ignore[arg-type]
        created_at=at,
        reason=kw.get("reason"),
    )


def order(eid: str, pid: str, at: datetime, amount: Any) -> Event:
    return Event(eid, pid, "order_paid", at, {"amount": amount})


A_PATH = ["test", "copy_a", "pause", "nudge", "done"]
B_PATH = ["test", "copy_b", "pause", "nudge", "done"]


async def seed(store: Store) -> None:
    await store.upsert_profiles([Profile(f"p{i}") for i in range(1, 7)])
    for e in [
        enrollment("e1", "p1", "A", A_PATH, status="converted"),
        enrollment("e2", "p2", "B", B_PATH),
        enrollment("e3", "p3", "holdout", ["test", "done"]),
        enrollment("e4", "p4", "A", A_PATH),
        enrollment("e5a", "p5", "A", A_PATH, ended_at=T + D),
        enrollment("e5b", "p5", "B", B_PATH, at=T + 2 * D),
        enrollment("e6", "p6", "B", B_PATH),
    ]:
        await store.create_enrollment(e)
    await store.record_deliveries(
        [
            send("e1:copy_a:1", "p1", "copy_a", T + H),
            send("e1:nudge:1", "p1", "nudge", T + 2 * D),
            send("e2:copy_b:1", "p2", "copy_b", T + H),
            send("e4:copy_a:1", "p4", "copy_a", T + H, "suppressed", reason="global:1/1d"),
            send("e5a:copy_a:1", "p5", "copy_a", T + H),
            send("e5b:copy_b:1", "p5", "copy_b", T + 2 * D + H),
            send("e6:copy_b:1", "p6", "copy_b", T + H, "unknown"),
        ]
    )
    for event in [
        order("o1-early", "p1", T - H, 50),  # before entry: never counts
        order("o1", "p1", T + 3 * D, 100),  # last touch: the nudge (email)
        order("o2", "p2", T + 7 * D, 40),  # exactly at the end of the window: counts
        order("o2-late", "p2", T + 7 * D + timedelta(seconds=1), 1000),  # after: never
        order("o3", "p3", T + D, "a lot"),  # holdout, a value that is not a number
        order("o5", "p5", T + 3 * D, 70),  # inside both of p5's windows: the later run's
    ]:
        await store.record_event(event)


async def report(store: Store, **kw: Any) -> Report:
    return await build_report(
        store,
        [JOURNEY],
        policy=Policy.model_validate({"experiments": {"min_sample": 2}}),
        tiers=Tiers(),
        now=T + 10 * D,
        **kw,
    )


async def test_orders_revenue_and_last_touch(store: Store) -> None:
    await seed(store)
    [j] = (await report(store)).journeys
    assert (j.entered, j.converted, j.orders, j.revenue) == (7, 4, 4, 210.0)
    assert j.orders_without_value == 1
    touches = {
        (t.step, t.channel, t.template): (t.conversions, t.orders, t.revenue)
        for t in j.last_touches
    }
    assert touches == {
        ("nudge", "email", "last_call"): (1, 1, 100.0),
        ("copy_b", "sms", "cart_b"): (2, 2, 110.0),
        ("none", "none", "none"): (1, 1, 0.0),
    }
    steps = {s.step: s for s in j.steps}
    assert (steps["copy_a"].sent, steps["copy_a"].suppressed) == (2, 1)
    assert (steps["copy_b"].sent, steps["copy_b"].unknown) == (2, 1)
    assert (steps["copy_b"].revenue, steps["nudge"].revenue, steps["copy_a"].revenue) == (
        110.0,
        0.0 + 100.0,
        0.0,
    )
    assert steps["test"].reached == 7
    assert steps["test"].converted == 4
    assert steps["test"].kind == "split" and steps["nudge"].kind == "send"
    assert j.suppression_reasons == {"global:1/1d": 1}
    [x] = j.experiments
    arms = {a.variant: (a.people, a.conversions, a.revenue) for a in x.arms}
    assert arms == {"A": (3, 1, 100.0), "B": (3, 2, 110.0), "holdout": (1, 1, 0.0)}
    assert x.control == "holdout"
    assert x.winner is None and x.verdict.startswith("not enough data yet")
    [lift] = j.lifts
    assert (lift.treated_people, lift.holdout_people) == (6, 1)
    assert lift.incremental_conversions.value == pytest.approx((3 / 6 - 1) * 6)
    assert {d.day: (d.sends, d.conversions) for d in j.timeline}[date(2026, 11, 5)] == (0, 2)


async def test_a_period_counts_only_the_people_who_entered_in_it(store: Store) -> None:
    await seed(store)
    # p5's second run entered on 2026-11-04 (Asia/Shanghai); nobody else did.
    [j] = (await report(store, period=Period(date(2026, 11, 4), date(2026, 11, 4)))).journeys
    assert (j.entered, j.converted, j.orders, j.revenue) == (1, 1, 1, 70.0)
    days = (date(2026, 11, 4), date(2026, 11, 4))
    again = await report(store, period=days)  # the renderer may pass two days
    assert again.period == days and again.journeys[0].entered == 1
    assert {s.step: s.sent for s in j.steps}["copy_b"] == 1


async def test_an_empty_store_reads_as_zeros_and_n_a(store: Store) -> None:
    built = await report(store)
    [j] = built.journeys
    assert (j.entered, j.converted, j.revenue) == (0, 0, 0.0)
    [x] = j.experiments
    assert all(a.people == 0 and a.rate.value is None for a in x.arms)
    assert "not enough data yet" in x.verdict
    assert j.lifts[0].incremental_conversions.value is None
    text = format_report(built)
    assert "n/a" in text and "converted 0 (n/a)" in text


async def test_a_goal_without_value_reports_revenue_as_n_a(store: Store) -> None:
    await seed(store)
    plain = JOURNEY.model_copy(
        update={"goal": JOURNEY.goal.model_copy(update={"value": None})}  # type: ignore[union-attr]
    )
    built = await build_report(store, [plain], policy=Policy(), tiers=Tiers(), now=T + 10 * D)
    [j] = built.journeys
    assert (j.converted, j.orders, j.revenue, j.orders_without_value) == (4, 4, 0.0, 0)
    assert "revenue n/a" in format_report(built)


async def test_channel_effect_by_the_stage_people_entered_in(store: Store) -> None:
    await seed(store)
    rows = {
        (r.channel, r.stage): (r.people, r.conversions, r.revenue_per_person.value)
        for r in (await report(store)).channel_effect
    }
    # p1 bought an hour before entering: new; nobody else had bought before entry.
    assert rows == {
        ("sms", "prospect"): (2, 2, 55.0),
        ("wecom", "new"): (1, 1, 100.0),
        ("wecom", "prospect"): (1, 0, 0.0),
        ("none", "prospect"): (3, 1, 0.0),
    }


async def test_channel_effect_by_tier_at_the_report_time(store: Store) -> None:
    await seed(store)
    tiers = Tiers.model_validate(
        {
            "tiers": [
                {
                    "id": "gold",
                    "when": {"event": "order_paid", "within": "365d", "sum": "amount", "gte": 100},
                },
                {"id": "bronze", "when": {"event": "order_paid"}},
            ]
        }
    )
    built = await build_report(store, [JOURNEY], policy=Policy(), tiers=tiers, now=T + 10 * D)
    rows = {
        (r.channel, r.stage): (r.people, r.conversions)
        for r in built.channel_effect
        if r.dimension == "tier"
    }
    # spend to date: p1 150 and p2 1,040 (gold); p3 (no numeric amount) and p5 70 (bronze)
    assert rows == {
        ("sms", "gold"): (1, 1),
        ("sms", "bronze"): (1, 1),
        ("wecom", "gold"): (1, 1),
        ("wecom", "bronze"): (1, 0),
        ("none", "bronze"): (1, 1),
        ("none", "none"): (2, 0),
    }
    assert "tier gold" in format_report(built)


async def test_the_report_reads_while_a_writer_holds_sqlites_lock(tmp_path: Path) -> None:
    """Its temporary tables live in SQLite's temp database: a worker writing the store at the
    same time neither blocks the report nor is blocked by it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}"
    writer, reader = Store.from_url(url), Store.from_url(url)
    try:
        await writer.migrate()
        await seed(writer)
        async with writer.engine.connect() as conn:
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            built = await asyncio.wait_for(report(reader), timeout=5)
            await conn.rollback()
        assert built.journeys[0].orders == 4
    finally:
        await writer.aclose()
        await reader.aclose()


async def test_a_variant_of_an_earlier_version_is_still_reported(store: Store) -> None:
    await seed(store)
    await store.create_enrollment(enrollment("e7", "p7", "C", ["test", "done"]))
    [x] = (await report(store)).journeys[0].experiments
    assert [a.variant for a in x.arms] == ["A", "B", "holdout", "C"]
    assert x.arms[-1].people == 1
