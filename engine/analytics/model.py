"""The report's numbers, as plain frozen records: computed by the analytics modules, rendered as
text (terminal) or HTML (one self-contained page). Nothing here reads the store.

Rates are fractions in [0, 1]; money is in the brand's currency units as the goal's value
property carries it; ``None`` means "n/a" (no data, or not defined for that group) and is shown
as such, never as 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval (``low``/``high`` None when undefined)."""

    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class StepRow:
    """One step of a journey's funnel."""

    step: str
    kind: str
    """wait | wait_for | branch | split | send | update | exit"""
    reached: int
    sent: int = 0
    suppressed: int = 0
    failed: int = 0
    unknown: int = 0
    """Sends whose outcome is unknown (a crash between the provider call and the log)."""
    exited: int = 0
    converted: int = 0
    revenue: float = 0.0
    """Revenue of conversions whose last touch was this step."""


@dataclass(frozen=True)
class Arm:
    """One variant of a split."""

    variant: str
    people: int
    conversions: int
    revenue: float
    rate: Estimate
    revenue_per_person: Estimate
    rate_difference: Estimate | None = None
    """Rate of this arm minus the control's (None for the control itself)."""
    p_value: float | None = None
    revenue_difference: Estimate | None = None


@dataclass(frozen=True)
class Experiment:
    """A split step read as an experiment against its control arm."""

    step: str
    control: str
    arms: list[Arm]
    winner: str | None
    verdict: str
    """One sentence a marketer can act on, e.g. "B beats A by 1.2 pts [0.3, 2.1]" or
    "not enough data yet: about 1,800 more people per arm for a 1-point difference"."""
    sequential: bool = False
    """Whether the intervals are always-valid (sequential) ones."""


@dataclass(frozen=True)
class Lift:
    """What messaging at all did: the treated arms against the holdout, scaled to the treated."""

    step: str
    treated_people: int
    holdout_people: int
    incremental_conversions: Estimate
    incremental_revenue: Estimate


@dataclass(frozen=True)
class DayPoint:
    day: date
    sends: int
    conversions: int
    revenue: float


@dataclass(frozen=True)
class Touch:
    """Conversions and revenue attributed to a last touch (step, channel, template)."""

    step: str
    channel: str
    template: str
    conversions: int
    orders: int
    revenue: float


@dataclass(frozen=True)
class JourneyReport:
    journey_id: str
    name: str
    goal_event: str | None
    entered: int
    active: int
    converted: int
    orders: int
    revenue: float
    steps: list[StepRow]
    experiments: list[Experiment] = field(default_factory=list)
    lifts: list[Lift] = field(default_factory=list)
    suppression_reasons: dict[str, int] = field(default_factory=dict)
    """Reason (e.g. ``global:1/1d``, ``quiet_hours``, ``arbitration_lost:x``) -> sends."""
    last_touches: list[Touch] = field(default_factory=list)
    timeline: list[DayPoint] = field(default_factory=list)
    exit_reasons: dict[str, int] = field(default_factory=dict)
    orders_without_value: int = 0
    """Orders whose goal value property was missing or not a number: counted as orders, with
    no revenue (the renderers say so when it is not 0)."""
    revenue_property: str | None = None
    """The goal's ``value`` property; None: the goal carries no revenue (shown as n/a)."""


@dataclass(frozen=True)
class KpiCell:
    """One customer group's three numbers for one period."""

    group: str
    """new | returning | dormant"""
    traffic: int
    buyers: int
    conversion_rate: float | None
    orders: int
    revenue: float
    average_order_value: float | None


@dataclass(frozen=True)
class Kpis:
    """The nine numbers: for new, returning and dormant customers, traffic, conversion rate and
    average order value, for a period and (optionally) the previous period of the same length."""

    start: date
    end: date
    cells: list[KpiCell]
    previous: list[KpiCell] | None = None


@dataclass(frozen=True)
class FatigueRow:
    touches: str
    """"0", "1", ... or "n+" for the last group."""
    people: int
    unsubscribed: int
    complained: int
    rate: Estimate


@dataclass(frozen=True)
class Fatigue:
    window: timedelta
    rows: list[FatigueRow]
    threshold: str | None
    """The smallest touch group whose unsubscribe rate rises clearly above the baseline."""
    policy_cap: str | None
    """The policy's current global cap over a comparable window, e.g. "4 per 7d"."""


@dataclass(frozen=True)
class ChannelEffect:
    channel: str
    stage: str
    """lifecycle stage (new / active / dormant / churned / prospect) or a tier."""
    people: int
    conversions: int
    rate: Estimate
    revenue_per_person: Estimate
    dimension: str = "stage"
    """What ``stage`` holds: "stage" (lifecycle stage at entry) or "tier" (member tier at the
    report's time; "none" for people without one)."""


@dataclass(frozen=True)
class Report:
    """Everything one page shows."""

    generated_at: datetime
    journeys: list[JourneyReport]
    kpis: Kpis | None = None
    fatigue: Fatigue | None = None
    channel_effect: list[ChannelEffect] = field(default_factory=list)
    period: tuple[date, date] | None = None
    """The days (first, last, inclusive) whose entries the journeys count; None: all time."""
