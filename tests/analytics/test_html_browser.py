"""The HTML report opened from a file in a real headless Chromium: every chart drew its bars
and points, the console stayed clean, nothing was fetched. Screenshots go to ``.artifacts/``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.analytics.html import render_html
from engine.analytics.model import Report
from tests.analytics.sample import cart_recovery, sample_report
from tests.browser import CHART_MARKS, chromium, save_artifact

pytestmark = pytest.mark.timeout(300)  # the first test may install Chromium

HOSTILE = '<img src=x onerror=alert(1)><script>alert("x")</script>'


def expected_marks(report: Report) -> dict[str, tuple[int, int]]:
    """Chart -> (bars and points, those of them with an area), from the report's numbers."""

    def of(values: list[float | None]) -> tuple[int, int]:
        present = [v for v in values if v is not None]
        return len(present), sum(1 for v in present if v != 0)

    marks: dict[str, tuple[int, int]] = {}
    for j in report.journeys:
        steps = j.steps
        marks[f"funnel-{j.journey_id}"] = of(
            [s.reached for s in steps]
            + [s.sent for s in steps]
            + [s.suppressed for s in steps]
            + [s.converted for s in steps]
        )
        for e in j.experiments:
            marks[f"variants-{j.journey_id}-{e.step}"] = of([a.rate.value for a in e.arms])
        if j.timeline:
            points = 3 * len(j.timeline)  # sends, conversions and revenue: a dot each per day
            marks[f"timeline-{j.journey_id}"] = (points, points)
        if j.suppression_reasons:
            marks[f"suppressions-{j.journey_id}"] = of(list(j.suppression_reasons.values()))
    if report.fatigue:
        marks["fatigue"] = of([row.rate.value for row in report.fatigue.rows])
    if report.channel_effect:
        marks["channel-effect"] = of([c.rate.value for c in report.channel_effect])
    return marks


async def test_every_chart_draws_offline_without_a_console_error(tmp_path: Path) -> None:
    report = sample_report()
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")

    async with chromium() as browser:
        visit = await browser.visit(page.as_uri(), CHART_MARKS)

    shot = save_artifact("report.png", visit.screenshot)
    assert visit.console_errors == []
    assert visit.requests == [page.as_uri()], "the page fetched something besides itself"
    drawn = {c["chart"]: (c["marks"], c["drawn"]) for c in visit.result}
    assert drawn == expected_marks(report), f"screenshot: {shot}"
    for chart in visit.result:
        assert chart["width"] > 300 and chart["height"] > 100, chart
    assert visit.screenshot.startswith(b"\x89PNG")


async def test_hostile_names_are_shown_as_text_and_never_run(tmp_path: Path) -> None:
    journey = dataclasses.replace(
        cart_recovery(name=HOSTILE, variant_b=HOSTILE), suppression_reasons={HOSTILE: 3}
    )
    page = tmp_path / "hostile.html"
    html = render_html(sample_report([journey]))
    page.write_text(html, encoding="utf-8")
    probe = (
        "({elements: document.querySelectorAll('img, script, main svg script').length,"
        " shown: document.body.innerText.includes(" + repr(HOSTILE) + "),"
        " charted: [...document.querySelectorAll('svg text')]"
        ".filter(t => t.textContent.includes('onerror')).length})"
    )

    async with chromium() as browser:
        visit = await browser.visit(page.as_uri(), probe)

    save_artifact("report-hostile.png", visit.screenshot)
    assert visit.console_errors == []
    assert visit.result["elements"] == 0
    assert visit.result["shown"] is True  # the name, as a marketer typed it
    assert visit.result["charted"] >= 2  # a variant label and a suppression reason


async def test_the_browser_check_sees_console_errors_and_blocked_loads(tmp_path: Path) -> None:
    """The guard of the tests above: a page that logs an error, throws and tries to load a
    script from elsewhere is reported three times over."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><meta http-equiv='Content-Security-Policy' content=\"default-src "
        "'none'; script-src 'unsafe-inline'\"><script>console.error('drawn badly');"
        "setTimeout(() => { throw new Error('boom') }, 0)</script>"
        "<script src='https://cdn.example.invalid/chart.js'></script><p>broken</p>",
        encoding="utf-8",
    )

    async with chromium() as browser:
        visit = await browser.visit(page.as_uri(), "document.title")

    errors = "\n".join(visit.console_errors)
    assert "drawn badly" in errors
    assert "boom" in errors
    assert "cdn.example.invalid" in errors
