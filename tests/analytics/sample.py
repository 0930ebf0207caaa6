"""A realistic ``Report`` built by hand, for rendering tests: the cart-recovery journey of the
examples with an A/B/holdout split, a welcome journey without a split, the nine numbers with a
previous period, a fatigue curve and channel effect by lifecycle stage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from engine.analytics.model import (
    Arm,
    ChannelEffect,
    DayPoint,
    Estimate,
    Experiment,
    Fatigue,
    FatigueRow,
    JourneyReport,
    KpiCell,
    Kpis,
    Lift,
    Report,
    StepRow,
    Touch,
)

START = date(2026, 11, 16)


@dataclass(frozen=True)
class JourneyWithValue(JourneyReport):
    """The journey record with the revenue fields the analytics branch adds to the model (this
    class changes nothing once they are merged): the goal's value property, and orders whose
    value was missing."""

    orders_without_value: int = 0
    revenue_property: str | None = None


@dataclass(frozen=True)
class ReportWithPeriod(Report):
    """The report with the analytics branch's period of entries (None: all time)."""

    period: tuple[date, date] | None = None


def cart_recovery(
    name: str = "加购未购挽回 (cart recovery)", variant_b: str = "B"
) -> JourneyReport:
    steps = [
        StepRow("pause", "wait", reached=1200),
        StepRow("value", "branch", reached=1200),
        StepRow("test", "split", reached=1030),
        StepRow("copy_a", "send", reached=462, sent=431, suppressed=27, failed=3, unknown=1),
        StepRow("copy_b", "send", reached=465, sent=440, suppressed=22, failed=2, converted=12),
        StepRow("vip_offer", "send", reached=170, sent=161, suppressed=9, converted=31),
        StepRow("wait_pay", "wait_for", reached=1032, converted=198, revenue=21_480.0),
        StepRow("nudge", "send", reached=690, sent=402, suppressed=288, converted=44),
        StepRow("done", "exit", reached=1180, exited=1180),
    ]
    arms = [
        Arm(
            "A",
            people=462,
            conversions=74,
            revenue=7_326.0,
            rate=Estimate(0.160, 0.129, 0.196),
            revenue_per_person=Estimate(15.86, 12.1, 19.6),
        ),
        Arm(
            variant_b,
            people=465,
            conversions=96,
            revenue=9_984.0,
            rate=Estimate(0.206, 0.172, 0.245),
            revenue_per_person=Estimate(21.47, 17.0, 25.9),
            rate_difference=Estimate(0.046, -0.003, 0.095),
            p_value=0.066,
            revenue_difference=Estimate(5.61, -0.2, 11.4),
        ),
        Arm(
            "holdout",
            people=103,
            conversions=11,
            revenue=1_089.0,
            rate=Estimate(0.107, 0.061, 0.181),
            revenue_per_person=Estimate(10.57, 4.2, 16.9),
            rate_difference=Estimate(-0.053, -0.121, 0.015),
            p_value=0.21,
            revenue_difference=None,
        ),
    ]
    experiment = Experiment(
        step="test",
        control="A",
        arms=arms,
        winner=None,
        verdict=(
            f"{variant_b} leads A by 4.6 pts [-0.3, 9.5]: not yet significant; about 400 more "
            "people per arm would settle a 4-point difference"
        ),
    )
    lift = Lift(
        step="test",
        treated_people=927,
        holdout_people=103,
        incremental_conversions=Estimate(71.0, 8.0, 134.0),
        incremental_revenue=Estimate(7_106.0, 610.0, 13_600.0),
    )
    timeline = [
        DayPoint(
            START + timedelta(days=i),
            sends=80 + (i * 37) % 60,
            conversions=8 + (i * 5) % 11,
            revenue=900.0 + (i * 313) % 700,
        )
        for i in range(14)
    ]
    return JourneyWithValue(
        journey_id="cart-recovery",
        name=name,
        goal_event="order_paid",
        entered=1200,
        active=20,
        converted=285,
        orders=301,
        revenue=29_930.0,
        steps=steps,
        experiments=[experiment],
        lifts=[lift],
        suppression_reasons={
            "journey:1/7d": 190,
            "global:4/7d": 71,
            "quiet_hours": 48,
            "arbitration_lost:winback": 23,
            "unsubscribed": 14,
        },
        last_touches=[
            Touch("vip_offer", "wecom", "cart_vip", conversions=31, orders=33, revenue=6_210.0),
            Touch("copy_b", "sms", "cart_b", conversions=96, orders=101, revenue=9_984.0),
            Touch("copy_a", "wecom", "cart_a", conversions=74, orders=78, revenue=7_326.0),
            Touch("nudge", "email", "cart_last_call", conversions=44, orders=45, revenue=3_960.0),
        ],
        timeline=timeline,
        exit_reasons={"goal": 285, "completed": 880, "exit_on:unsubscribed": 15},
        revenue_property="amount",
    )


def welcome() -> JourneyReport:
    return JourneyWithValue(
        journey_id="welcome",
        name="新客欢迎 (welcome)",
        goal_event="first_order",
        entered=310,
        active=0,
        converted=41,
        orders=41,
        revenue=2_870.0,
        steps=[
            StepRow("hello", "send", reached=310, sent=305, suppressed=5),
            StepRow("wait_day", "wait", reached=305),
            StepRow("coupon", "send", reached=280, sent=270, suppressed=10, converted=41),
            StepRow("done", "exit", reached=310, exited=310),
        ],
        suppression_reasons={"quiet_hours": 15},
        last_touches=[
            Touch("coupon", "sms", "welcome_coupon", conversions=41, orders=41, revenue=2_870.0)
        ],
        timeline=[
            DayPoint(START + timedelta(days=i), sends=40 + 9 * i, conversions=i, revenue=70.0 * i)
            for i in range(7)
        ],
        exit_reasons={"completed": 310},
        revenue_property="amount",
    )


def kpis() -> Kpis:
    def cells(scale: float) -> list[KpiCell]:
        return [
            KpiCell("new", int(820 * scale), 96, 96 / (820 * scale), 101, 7_070.0, 70.0),
            KpiCell("returning", int(1540 * scale), 402, 402 / (1540 * scale), 455, 47_320, 104.0),
            KpiCell("dormant", int(610 * scale), 0, None, 0, 0.0, None),
        ]

    return Kpis(start=START, end=START + timedelta(days=13), cells=cells(1.0), previous=cells(0.9))


def fatigue() -> Fatigue:
    counts = [(620, 3), (940, 6), (710, 5), (430, 5), (210, 6), (95, 7)]
    rows = []
    groups = ["0", "1", "2", "3", "4", "5+"]
    for touches, (people, unsubscribed) in zip(groups, counts, strict=True):
        rate = unsubscribed / people
        rows.append(
            FatigueRow(
                touches,
                people=people,
                unsubscribed=unsubscribed,
                complained=unsubscribed // 3,
                rate=Estimate(rate, rate * 0.5, rate * 1.8),
            )
        )
    return Fatigue(window=timedelta(days=7), rows=rows, threshold="4", policy_cap="4 per 7d")


def channel_effect() -> list[ChannelEffect]:
    rows = []
    for channel, base in (("wecom", 0.18), ("sms", 0.12), ("email", 0.07)):
        for stage, factor in (("new", 1.2), ("active", 1.0), ("dormant", 0.4)):
            if channel == "email" and stage == "new":
                continue  # no e-mail address for new customers yet: no cell, not a zero
            rate = base * factor
            rows.append(
                ChannelEffect(
                    channel,
                    stage,
                    people=400,
                    conversions=round(400 * rate),
                    rate=Estimate(rate, rate * 0.75, rate * 1.3),
                    revenue_per_person=Estimate(rate * 95, rate * 70, rate * 120),
                )
            )
    return rows


def sample_report(journeys: list[JourneyReport] | None = None) -> Report:
    return Report(
        generated_at=datetime(2026, 11, 30, 9, 30, tzinfo=UTC),
        journeys=[cart_recovery(), welcome()] if journeys is None else journeys,
        kpis=kpis(),
        fatigue=fatigue(),
        channel_effect=channel_effect(),
    )
