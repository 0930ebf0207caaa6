"""The report's charts as inline SVG, drawn by pygal from the report's records.

pygal writes SVG through an XML serializer, so every label (journey, variant, reason, channel)
is escaped as text. Its own JavaScript (tooltips from a CDN, and an inline config script) is left
out: the page must open offline and runs no script at all; values are printed on the bars
instead of in tooltips.

Each function returns ``None`` when there is nothing to draw, so the page can say "no data"
instead of showing an empty frame. Rates are drawn in percent, with their 95% intervals as
whiskers where the report has them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pygal
from pygal.style import Style

from engine.analytics.model import ChannelEffect, Estimate, Experiment, Fatigue, JourneyReport

FONTS = (
    'system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", "WenQuanYi Micro Hei", '
    '"Microsoft YaHei", "PingFang SC", "DejaVu Sans", sans-serif'
)
STYLE = Style(
    font_family=FONTS,
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#333333",
    foreground_strong="#111111",
    foreground_subtle="#999999",
    opacity=".85",
    opacity_hover=".95",
    colors=("#3b6fb6", "#e39c37", "#c4463a", "#3f9a5b", "#8a63b0", "#6f7782"),
    title_font_size=15,
    legend_font_size=12,
    label_font_size=11,
    major_label_font_size=11,
    value_font_size=10,
)
_COMMON: dict[str, Any] = {
    "style": STYLE,
    "js": [],
    "disable_xml_declaration": True,
    "width": 760,
    "height": 340,
    "legend_at_bottom": True,
    "legend_box_size": 10,
    "truncate_legend": -1,
    "truncate_label": 28,
    "print_values": True,
    "margin": 12,
}


@dataclass(frozen=True)
class Chart:
    key: str
    """Stable and unique in a page (``funnel-cart-recovery``): the figure's ``data-chart``."""
    svg: str
    """An ``<svg>`` element, its text escaped by the XML serializer."""


def _without_scripts(root: Any) -> Any:
    """pygal always adds a config ``<script>``; the page runs none (its CSP forbids it)."""
    for parent in list(root.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root


def _render(chart: Any) -> str:
    return str(chart.render(is_unicode=True))


def _new(kind: Callable[..., Any], title: str, **options: Any) -> Any:
    chart = kind(title=title, **{**_COMMON, **options})
    chart.add_xml_filter(_without_scripts)
    return chart


def _count(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}%"


def _money(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def _rate_point(estimate: Estimate) -> dict[str, Any] | None:
    """A pygal value in percent, with its interval as a whisker when both ends are known."""
    if estimate.value is None:
        return None
    point: dict[str, Any] = {"value": 100 * estimate.value}
    if estimate.low is not None and estimate.high is not None:
        point["ci"] = {"low": 100 * estimate.low, "high": 100 * estimate.high}
    return point


def _percent_range(estimates: Sequence[Estimate]) -> tuple[float, float]:
    """From 0 to a little above the highest value or interval end: pygal scales its axis to the
    values only, and a whisker above the frame would be cut off."""
    tops = [e.high if e.high is not None else e.value for e in estimates]
    top = max((t for t in tops if t is not None), default=0.0)
    return 0.0, 100 * top * 1.08 if top > 0 else 1.0


def funnel(journey: JourneyReport) -> Chart | None:
    """People reaching each step, with sends, suppressions and conversions beside them."""
    if not journey.steps:
        return None
    chart = _new(
        pygal.Bar,
        "People per step",
        value_formatter=_count,
        x_label_rotation=-25 if len(journey.steps) > 6 else 0,
        print_values=len(journey.steps) <= 6,
    )
    chart.x_labels = [row.step for row in journey.steps]
    chart.add("reached", [row.reached for row in journey.steps])
    chart.add("sent", [row.sent for row in journey.steps])
    chart.add("suppressed", [row.suppressed for row in journey.steps])
    chart.add("converted", [row.converted for row in journey.steps])
    return Chart(f"funnel-{journey.journey_id}", _render(chart))


def variants(journey_id: str, experiment: Experiment) -> Chart:
    """Conversion rate per variant of one split, with 95% intervals."""
    chart = _new(
        pygal.Bar,
        f"Conversion by variant at {experiment.step}",
        value_formatter=_percent,
        show_legend=False,
        y_title="conversion %",
        range=_percent_range([arm.rate for arm in experiment.arms]),
    )
    chart.x_labels = [f"{arm.variant} (n={arm.people:,})" for arm in experiment.arms]
    chart.add("conversion", [_rate_point(arm.rate) for arm in experiment.arms])
    return Chart(f"variants-{journey_id}-{experiment.step}", _render(chart))


def timeline(journey: JourneyReport) -> Chart | None:
    """Sends and conversions per day (left axis) and revenue (right axis)."""
    if not journey.timeline:
        return None
    days = journey.timeline
    chart = _new(
        pygal.Line,
        "Per day: sends, conversions and revenue (right axis)",
        value_formatter=_count,
        print_values=False,
        dots_size=3,
        x_label_rotation=-30 if len(days) > 10 else 0,
        show_minor_x_labels=len(days) <= 31,
        x_labels_major_every=max(1, len(days) // 15),
    )
    chart.x_labels = [day.day.isoformat() for day in days]
    chart.add("sends", [day.sends for day in days])
    chart.add("conversions", [day.conversions for day in days])
    chart.add("revenue", [day.revenue for day in days], secondary=True, formatter=_money)
    return Chart(f"timeline-{journey.journey_id}", _render(chart))


def suppressions(journey: JourneyReport) -> Chart | None:
    """Suppressed sends by reason, the largest on top."""
    reasons = sorted(journey.suppression_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    if not reasons:
        return None
    chart = _new(
        pygal.HorizontalBar,
        "Suppressed sends by reason",
        value_formatter=_count,
        show_legend=False,
        height=max(160, 60 + 36 * len(reasons)),
        truncate_label=40,
    )
    # A horizontal bar chart draws its first label at the bottom.
    chart.x_labels = [reason for reason, _ in reversed(reasons)]
    chart.add("suppressed", [count for _, count in reversed(reasons)])
    return Chart(f"suppressions-{journey.journey_id}", _render(chart))


def fatigue(curve: Fatigue) -> Chart | None:
    """Unsubscribe rate by touches received in the window, with 95% intervals."""
    if not curve.rows:
        return None
    chart = _new(
        pygal.Bar,
        "Unsubscribe rate by touches received",
        value_formatter=lambda v: "" if v is None else f"{v:.2f}%",
        show_legend=False,
        x_title="touches received in the window",
        y_title="unsubscribed %",
        range=_percent_range([row.rate for row in curve.rows]),
    )
    chart.x_labels = [f"{row.touches} (n={row.people:,})" for row in curve.rows]
    chart.add("unsubscribe rate", [_rate_point(row.rate) for row in curve.rows])
    return Chart("fatigue", _render(chart))


def channel_effect(effects: Sequence[ChannelEffect]) -> Chart | None:
    """Conversion rate per channel (one series each) for each stage; a missing pair draws no bar."""
    if not effects:
        return None
    stages = list(dict.fromkeys(effect.stage for effect in effects))
    channels = list(dict.fromkeys(effect.channel for effect in effects))
    cells = {(effect.channel, effect.stage): effect for effect in effects}
    chart = _new(
        pygal.Bar,
        "Conversion by channel and stage",
        value_formatter=_percent,
        y_title="conversion %",
        print_values=len(effects) <= 12,
        range=_percent_range([effect.rate for effect in effects]),
    )
    chart.x_labels = stages
    for channel in channels:
        chart.add(
            channel,
            [
                _rate_point(cell.rate) if (cell := cells.get((channel, stage))) else None
                for stage in stages
            ],
        )
    return Chart("channel-effect", _render(chart))
