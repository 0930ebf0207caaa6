"""The report as plain text for a terminal: aligned columns, "n/a" where a number is undefined."""

from __future__ import annotations

from engine.analytics.fatigue import span_text
from engine.analytics.model import (
    ChannelEffect,
    Estimate,
    Experiment,
    Fatigue,
    JourneyReport,
    KpiCell,
    Kpis,
    Lift,
    Report,
)

NA = "n/a"


def pct(value: float | None, places: int = 1) -> str:
    return NA if value is None else f"{100 * value:.{places}f}%"


def money(value: float | None) -> str:
    return NA if value is None else f"{value:,.2f}"


def interval(e: Estimate, scale: float = 100.0, places: int = 1, signed: bool = False) -> str:
    """``[low, high]`` of an estimate in the given scale (100: percentage points)."""
    if e.low is None or e.high is None:
        return "[n/a]"
    sign = "+" if signed else ""
    return f"[{e.low * scale:{sign},.{places}f}, {e.high * scale:{sign},.{places}f}]"


def format_report(report: Report) -> str:
    parts = [format_journey(j) for j in report.journeys]
    if not report.journeys:
        parts.append("no journeys to report")
    if report.channel_effect:
        parts.append(format_channel_effect(report.channel_effect))
    if report.kpis is not None:
        parts.append(format_kpis(report.kpis))
    if report.fatigue is not None:
        parts.append(format_fatigue(report.fatigue))
    return "\n\n".join(parts)


def format_journey(j: JourneyReport) -> str:
    """The funnel per step (the old columns, then unknown outcomes and revenue), experiments,
    lift, last touches, suppression and exit reasons."""
    rate = pct(j.converted / j.entered) if j.entered else NA
    revenue = money(j.revenue) if j.revenue_property else NA
    title = f"{j.journey_id}{' — ' + j.name if j.name else ''}"
    lines = [
        f"{title}: entered {j.entered}, converted {j.converted} ({rate}), "
        f"orders {j.orders}, revenue {revenue}, still active {j.active}",
    ]
    if j.goal_event is None:
        lines.append("  no goal: conversions and revenue are not measured")
    elif j.revenue_property is None:
        lines.append(f"  the goal ({j.goal_event}) names no value property: revenue is n/a")
    if j.orders_without_value:
        lines.append(
            f"  {j.orders_without_value} of {j.orders} orders had no numeric "
            f"'{j.revenue_property}': counted as orders, without revenue"
        )
    lines.append(
        f"  {'step':<16}{'reached':>9}{'sent':>7}{'suppr.':>8}{'failed':>8}{'exited':>8}"
        f"{'conv.':>7}{'unknown':>9}{'revenue':>12}"
    )
    for r in j.steps:
        lines.append(
            f"  {r.step:<16}{r.reached:>9}{r.sent:>7}{r.suppressed:>8}{r.failed:>8}"
            f"{r.exited:>8}{r.converted:>7}{r.unknown:>9}{money(r.revenue):>12}"
        )
    for experiment in j.experiments:
        lines.extend(format_experiment(experiment))
    for lift in j.lifts:
        lines.append(format_lift(lift))
    if j.last_touches:
        lines.append("  last touch (step / channel / template): conversions, orders, revenue")
        for t in j.last_touches:
            where = f"{t.step} / {t.channel} / {t.template}"
            lines.append(f"    {where:<44}{t.conversions:>7}{t.orders:>7}{money(t.revenue):>12}")
    if j.suppression_reasons:
        reasons = ", ".join(f"{k} {v}" for k, v in j.suppression_reasons.items())
        lines.append(f"  suppressed because: {reasons}")
    if j.exit_reasons:
        lines.append("  ended: " + "; ".join(f"{k} {v}" for k, v in j.exit_reasons.items()))
    return "\n".join(lines)


def format_experiment(x: Experiment) -> list[str]:
    kind = "always-valid 95% intervals" if x.sequential else "95% confidence intervals"
    lines = [f"  split {x.step} against {x.control} ({kind}):"]
    for arm in x.arms:
        line = (
            f"    {arm.variant:<12}{arm.people:>7} people {arm.conversions:>6} converted "
            f"{pct(arm.rate.value):>7} {interval(arm.rate)}  revenue/person "
            f"{money(arm.revenue_per_person.value)} {interval(arm.revenue_per_person, 1, 2)}"
        )
        lines.append(line)
    for arm in x.arms:
        d = arm.rate_difference
        if d is None:
            continue
        if d.value is None:
            lines.append(f"    {arm.variant} vs {x.control}: n/a (an arm has no people)")
            continue
        p = NA if arm.p_value is None else f"{arm.p_value:.3g}"
        rev = arm.revenue_difference
        rev_text = (
            ""
            if rev is None or rev.value is None
            else f"; revenue/person {rev.value:+,.2f} {interval(rev, 1, 2, signed=True)}"
        )
        lines.append(
            f"    {arm.variant} vs {x.control}: {100 * d.value:+.1f} pts "
            f"{interval(d, signed=True)} p={p}{rev_text}"
        )
    lines.append(f"    verdict: {x.verdict}")
    return lines


def format_lift(lift: Lift) -> str:
    c, r = lift.incremental_conversions, lift.incremental_revenue
    conv = NA if c.value is None else f"{c.value:+,.1f} {interval(c, 1, 1, signed=True)}"
    rev = NA if r.value is None else f"{r.value:+,.2f} {interval(r, 1, 2, signed=True)}"
    return (
        f"  lift of {lift.step} ({lift.treated_people} treated vs {lift.holdout_people} "
        f"holdout): incremental conversions {conv}, incremental revenue {rev}"
    )


def format_kpis(k: Kpis) -> str:
    days = (k.end - k.start).days + 1
    lines = [
        f"the nine numbers, {k.start} to {k.end}"
        + (f" (previous {days} days in brackets)" if k.previous else ""),
        f"  {'customers':<12}{'traffic':>16}{'conversion':>20}{'avg order value':>24}",
    ]
    before = {c.group: c for c in k.previous or []}
    for cell in k.cells:
        old = before.get(cell.group)
        traffic = _with_previous(str(cell.traffic), old and str(old.traffic))
        rate = _with_previous(pct(cell.conversion_rate), old and pct(old.conversion_rate))
        value = _with_previous(
            money(cell.average_order_value), old and money(old.average_order_value)
        )
        lines.append(f"  {cell.group:<12}{traffic:>16}{rate:>20}{value:>24}")
    if all(c.traffic == 0 for c in k.cells):
        lines.append("  no customer activity in this period")
    return "\n".join(lines)


def _with_previous(now: str, before: object) -> str:
    return now if not isinstance(before, str) else f"{now} ({before})"


def format_kpi_cell(cell: KpiCell) -> str:
    return (
        f"{cell.group}: traffic {cell.traffic}, conversion {pct(cell.conversion_rate)}, "
        f"average order value {money(cell.average_order_value)}"
    )


def format_fatigue(f: Fatigue) -> str:
    lines = [
        f"fatigue: unsubscribe rate by marketing touches in {span_text(f.window)} (95% intervals)",
        f"  {'touches':<9}{'people':>9}{'unsub.':>8}{'complaints':>12}{'rate':>9}  interval",
    ]
    for r in f.rows:
        lines.append(
            f"  {r.touches:<9}{r.people:>9}{r.unsubscribed:>8}{r.complained:>12}"
            f"{pct(r.rate.value, 2):>9}  {interval(r.rate, places=2)}"
        )
    if not f.rows:
        lines.append("  nobody to count")
    threshold = f.threshold or "none (no touch count rises clearly above 0-1 touches)"
    lines.append(f"  rises clearly at: {threshold}; policy global cap: {f.policy_cap or 'none'}")
    return "\n".join(lines)


def format_channel_effect(rows: list[ChannelEffect]) -> str:
    lines = [
        "channel effect by lifecycle stage at entry and by tier now (first channel of each run; "
        "95% intervals)",
        f"  {'channel':<10}{'segment':<16}{'people':>8}{'conv.':>7}{'rate':>8}  {'interval':<16}"
        f"{'revenue/person':>15}  interval",
    ]
    for r in rows:
        lines.append(
            f"  {r.channel:<10}{r.dimension + ' ' + r.stage:<16}{r.people:>8}{r.conversions:>7}"
            f"{pct(r.rate.value):>8}  {interval(r.rate):<16}"
            f"{money(r.revenue_per_person.value):>15}  {interval(r.revenue_per_person, 1, 2)}"
        )
    return "\n".join(lines)
