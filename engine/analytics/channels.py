"""Channel effect by segment: conversion rate and revenue per person by channel and lifecycle
stage, over the runs of the journeys in the report.

A run's channel is the channel of the first message sent in it (``none`` when nothing was sent:
holdouts, suppressed sends), so the groups do not overlap; its stage is the person's lifecycle
stage when they entered; by tier, their member tier at the report's time (tiers are spend
over the last year, so a tier at entry would need the whole tier language evaluated in the
past). Where a split sends each arm through another channel, the comparison
between channels is randomised; elsewhere it is observational (people differ by channel).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from engine.analytics.model import ChannelEffect, Estimate
from engine.analytics.stats import Moments, mean_interval, wilson
from engine.store.analytics import Outcome

STAGES = ("prospect", "new", "active", "dormant", "churned")


def add(a: Outcome, b: Outcome) -> Outcome:
    return Outcome(
        people=a.people + b.people,
        converted=a.converted + b.converted,
        orders=a.orders + b.orders,
        valued=a.valued + b.valued,
        revenue=a.revenue + b.revenue,
        revenue_squares=a.revenue_squares + b.revenue_squares,
    )


def channel_effect(
    groups: Iterable[dict[tuple[str, str], Outcome]],
    dimension: str = "stage",
    order_of: Sequence[str] = STAGES,
) -> list[ChannelEffect]:
    """One row per (channel, stage or tier) with people, over every journey's groups."""
    total: dict[tuple[str, str], Outcome] = {}
    for journey_groups in groups:
        for key, out in journey_groups.items():
            total[key] = add(total.get(key, Outcome()), out)

    def order(key: tuple[str, str]) -> tuple[bool, str, int]:
        channel, stage = key
        return channel == "none", channel, order_of.index(stage) if stage in order_of else 99

    rows: list[ChannelEffect] = []
    for channel, stage in sorted(total, key=order):
        out = total[(channel, stage)]
        if out.people == 0:
            continue
        low, high = wilson(out.converted, out.people)
        rows.append(
            ChannelEffect(
                channel=channel,
                stage=stage,
                people=out.people,
                conversions=out.converted,
                rate=Estimate(out.converted / out.people, low, high),
                revenue_per_person=Estimate(
                    *mean_interval(Moments(out.people, out.revenue, out.revenue_squares))
                ),
                dimension=dimension,
            )
        )
    return rows
