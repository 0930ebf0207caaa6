"""The report as one self-contained HTML page: inline SVG charts, inline CSS, no script.

The page loads nothing from the network (a Content-Security-Policy in the page itself forbids
it), so it opens from a file, from an e-mail attachment or behind the API alike. Every value
from the store (journey, step, variant and channel names, suppression reasons) is escaped:
Jinja2 autoescapes the page, and the charts' SVG comes out of an XML serializer. ``None`` is
shown as "n/a", never as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from engine.analytics import charts
from engine.analytics.model import Estimate, JourneyReport, KpiCell, Report

NA = "n/a"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)
"""Nothing may load and no script may run; the page carries it, and the API sends it too."""


def count(value: float | None) -> str:
    return NA if value is None else f"{value:,.0f}"


def percent(value: float | None, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage."""
    return NA if value is None else f"{100 * value:.{digits}f}%"


def points(value: float | None) -> str:
    """A difference of two rates, in percentage points."""
    return NA if value is None else f"{100 * value:+.1f} pts"


def money(value: float | None) -> str:
    return NA if value is None else f"{value:,.2f}"


def p_value(value: float | None) -> str:
    if value is None:
        return NA
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def interval(estimate: Estimate | None, kind: str = "percent") -> str:
    """``[low, high]`` in the estimate's unit; "n/a" when either end is unknown."""
    if estimate is None or estimate.low is None or estimate.high is None:
        return NA
    if kind == "percent":
        return f"[{100 * estimate.low:.1f}%, {100 * estimate.high:.1f}%]"
    if kind == "points":
        return f"[{100 * estimate.low:+.1f}, {100 * estimate.high:+.1f}]"
    if kind == "count":
        return f"[{estimate.low:,.0f}, {estimate.high:,.0f}]"
    return f"[{estimate.low:,.2f}, {estimate.high:,.2f}]"


def change(now: float | None, before: float | None) -> str:
    """Relative change against the previous period, e.g. "+12.5%"; "n/a" without a base."""
    if now is None or before is None or before == 0:
        return NA
    return f"{100 * (now - before) / before:+.1f}%"


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class KpiRow:
    group: str
    now: KpiCell
    before: KpiCell | None


@dataclass(frozen=True)
class JourneyView:
    anchor: str
    report: JourneyReport
    funnel: charts.Chart | None
    variants: list[charts.Chart]
    timeline: charts.Chart | None
    suppressions: charts.Chart | None


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("engine.analytics", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        count=count,
        percent=percent,
        points=points,
        money=money,
        p_value=p_value,
        interval=interval,
        svg=lambda chart: Markup(chart.svg),
    )
    env.globals.update(change=change, ratio=ratio, NA=NA, CSP=CONTENT_SECURITY_POLICY)
    return env


_ENV = _environment()


def _kpi_rows(report: Report) -> list[KpiRow]:
    if report.kpis is None:
        return []
    before = {cell.group: cell for cell in report.kpis.previous or []}
    return [KpiRow(cell.group, cell, before.get(cell.group)) for cell in report.kpis.cells]


def _journey_views(journeys: Sequence[JourneyReport]) -> list[JourneyView]:
    return [
        JourneyView(
            anchor=f"journey-{index}",
            report=journey,
            funnel=charts.funnel(journey),
            variants=[charts.variants(journey.journey_id, e) for e in journey.experiments],
            timeline=charts.timeline(journey),
            suppressions=charts.suppressions(journey),
        )
        for index, journey in enumerate(journeys, start=1)
    ]


def render_html(report: Report, *, title: str = "Journey report") -> str:
    """The whole page for ``report``, as text (UTF-8 when written)."""
    generated: datetime = report.generated_at
    return _ENV.get_template("report.html.j2").render(
        title=title,
        report=report,
        generated=generated.strftime("%Y-%m-%d %H:%M %Z").strip(),
        kpi_rows=_kpi_rows(report),
        journeys=_journey_views(report.journeys),
        fatigue_chart=charts.fatigue(report.fatigue) if report.fatigue else None,
        channel_chart=charts.channel_effect(report.channel_effect),
    )
