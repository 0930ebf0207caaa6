"""The HTML report as text: self-contained, escaped, "n/a" for what is unknown."""

from __future__ import annotations

import dataclasses
import html
import re
from datetime import date

from engine.analytics.html import render_html
from engine.analytics.model import Estimate, Report
from tests.analytics.sample import (
    JourneyWithValue,
    ReportWithPeriod,
    cart_recovery,
    kpis,
    sample_report,
)

HOSTILE = '<script>alert("x")</script>'


def test_the_page_loads_nothing_and_runs_nothing() -> None:
    page = render_html(sample_report())

    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert csp is not None
    assert html.unescape(csp.group(1)).startswith("default-src 'none'; style-src 'unsafe-inline'")
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "@import" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "url(" not in page


def test_every_part_of_the_report_is_on_the_page() -> None:
    page = render_html(sample_report())

    for heading in (
        "The nine numbers",
        "Funnel",
        "Experiment at test",
        "Lift against the holdout",
        "Over time",
        "Why sends were suppressed",
        "Last touch before conversion",
        "Fatigue",
        "Channel effect",
    ):
        assert heading in page, heading
    assert "加购未购挽回 (cart recovery)" in page
    assert "B leads A by 4.6 pts [-0.3, 9.5]" in page
    assert "[+0.3%, 9.5%]" not in page  # intervals keep their own unit
    assert "[-0.3, +9.5]" in page  # the difference of B against A, in points
    assert "[12.9%, 19.6%]" in page  # A's conversion rate
    assert "29,930.00" in page  # the journey's revenue
    assert len(re.findall(r'<figure class="chart"', page)) == 9


def test_names_from_the_store_are_escaped_in_tables_and_charts() -> None:
    journey = dataclasses.replace(
        cart_recovery(name=HOSTILE, variant_b=HOSTILE),
        suppression_reasons={HOSTILE: 3},
    )

    page = render_html(sample_report([journey]))

    assert HOSTILE not in page
    assert "<script" not in page.lower()
    assert "&lt;script&gt;" in page


def test_unknown_values_show_as_n_a_never_as_zero() -> None:
    cells = kpis().cells
    journey = cart_recovery()
    arms = [
        dataclasses.replace(arm, rate=Estimate(None), revenue_per_person=Estimate(None))
        for arm in journey.experiments[0].arms
    ]
    journey = dataclasses.replace(
        journey,
        experiments=[dataclasses.replace(journey.experiments[0], arms=arms)],
    )
    report = dataclasses.replace(
        sample_report([journey]),
        kpis=dataclasses.replace(kpis(), cells=cells, previous=None),
    )

    page = render_html(report)

    dormant = re.search(r"<td>dormant</td>(.*?)</tr>", page, re.S)
    assert dormant is not None
    assert dormant.group(1).count("n/a") == 2  # conversion rate and average order value
    experiment = re.search(r'<table class="experiment">(.*?)</table>', page, re.S)
    assert experiment is not None
    rows = re.findall(r"<tr>(.*?)</tr>", experiment.group(1), re.S)
    assert rows and all("0.0%" not in row for row in rows)
    assert all(row.count("n/a") >= 4 for row in rows[1:])


def test_a_report_without_data_says_so_instead_of_drawing_empty_charts() -> None:
    page = render_html(Report(generated_at=sample_report().generated_at, journeys=[]))

    assert '<figure class="chart"' not in page
    assert "no data for this period" in page
    assert page.count("no data") >= 3


def test_revenue_the_goal_does_not_measure_reads_n_a_and_orders_without_value_are_named() -> None:
    journey = cart_recovery()
    base = {f.name: getattr(journey, f.name) for f in dataclasses.fields(journey)}
    # Whole dicts: once the model has these fields, base carries them too.
    without = JourneyWithValue(
        **{**base, "journey_id": "no-value", "revenue": 0.0, "revenue_property": None}
    )
    partial = JourneyWithValue(**{**base, "orders_without_value": 3, "revenue_property": "amount"})
    report = ReportWithPeriod(
        generated_at=sample_report().generated_at,
        journeys=[without, partial],
        period=(date(2026, 11, 1), date(2026, 11, 30)),
    )

    page = render_html(report)

    assert "people who entered 2026-11-01 – 2026-11-30" in page
    assert "The goal names no value property, so revenue is not measured." in page
    assert page.count("<b>n/a</b><span>revenue</span>") == 1
    assert page.count("<b>29,930.00</b><span>revenue (amount)</span>") == 1
    assert "3 orders had no numeric amount: counted as orders, without revenue." in page
