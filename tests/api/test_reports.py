"""The HTML report served by the real API: with an API key, or in a browser with a signed link
from `journey report --link` (Chromium follows it; the token ends up in a cookie, not in the
address bar)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from engine.analytics.model import Report
from engine.api import create_app
from engine.api.report_access import COOKIE
from engine.report_links import ALL, make_report_token, report_url
from engine.services.reporting import UnknownJourney
from engine.unsubscribe import make_token
from tests.analytics.sample import sample_report
from tests.analytics.test_html_browser import expected_marks
from tests.api.conftest import KEYS, serving
from tests.browser import CHART_MARKS, chromium, save_artifact
from tests.harness import running_worker, sqlite_store

SECRET = "report-secret-for-tests"
LATER = datetime.now(UTC) + timedelta(days=1)


class SampleReports:
    """Stands in for build_report (the analytics computation): the sample report, filtered."""

    async def __call__(self, journey_ids: Sequence[str] | None = None) -> Report:
        report = sample_report()
        if not journey_ids:
            return report
        known = {j.journey_id for j in report.journeys}
        if missing := [i for i in journey_ids if i not in known]:
            raise UnknownJourney(missing, sorted(known))
        return Report(
            generated_at=report.generated_at,
            journeys=[j for j in report.journeys if j.journey_id in journey_ids],
            kpis=report.kpis,
            fatigue=report.fatigue,
            channel_effect=report.channel_effect,
        )


@pytest.fixture
async def url(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[str]:
    store = await sqlite_store(tmp_path)
    try:
        async with running_worker(time_skipping_env, store, tmp_path) as harness:
            app = create_app(
                store, harness.router, KEYS, reports=SampleReports(), report_secret=SECRET
            )
            async with serving(app) as base:
                yield base
    finally:
        await store.aclose()


async def test_an_api_key_reads_every_journey_or_one(url: str) -> None:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {KEYS[0]}"}
    ) as client:
        every = await client.get("/reports")
        one = await client.get("/reports/welcome")
        unknown = await client.get("/reports/nope")

    assert every.status_code == 200
    assert every.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in every.headers["content-security-policy"]
    assert every.headers["cache-control"] == "no-store"
    assert "加购未购挽回 (cart recovery)" in every.text and "新客欢迎 (welcome)" in every.text
    assert one.status_code == 200
    assert "新客欢迎 (welcome)" in one.text and "cart recovery" not in one.text
    assert unknown.status_code == 404 and "unknown journey &#x27;nope&#x27;" in unknown.text


async def test_without_a_key_or_a_valid_link_the_report_stays_closed(url: str) -> None:
    expired = make_report_token(SECRET, ALL, datetime.now(UTC) - timedelta(seconds=1))
    forged = make_report_token("another-secret", ALL, LATER)
    unsubscribe = make_token(SECRET, "p1", "email")  # a signed link of another kind
    async with httpx.AsyncClient(base_url=url) as client:
        bare = await client.get("/reports")
        refused = [
            await client.get("/reports", params={"token": token})
            for token in (expired, forged, unsubscribe, "garbage")
        ]
        wrong_key = await client.get("/reports", headers={"Authorization": "Bearer nope"})
        other_path = await client.get("/v1/nothing", params={"token": make_token(SECRET, "a", "b")})

    assert bare.status_code == 401
    assert "journey report --link" in bare.text  # a browser is told how to get in
    assert [r.status_code for r in refused] == [401, 401, 401, 401]
    assert "加购" not in "".join(r.text for r in refused)
    assert wrong_key.status_code == 401 and wrong_key.json()["detail"] == "invalid API key"
    assert other_path.status_code == 401


async def test_a_link_to_one_journey_opens_that_journey_only(url: str) -> None:
    link = report_url(url, SECRET, "welcome", LATER)
    async with httpx.AsyncClient() as client:
        first = await client.get(link)
        page = await client.get(url + first.headers["location"])
        others = [await client.get(url + path) for path in ("/reports", "/reports/cart-recovery")]

    assert first.status_code == 303
    assert first.headers["location"] == "/reports/welcome"  # the token left the address
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "Path=/reports" in cookie
    assert page.status_code == 200 and "新客欢迎 (welcome)" in page.text
    assert [r.status_code for r in others] == [401, 401]


async def test_a_signed_link_opens_the_report_in_a_browser(url: str) -> None:
    link = report_url(url, SECRET, None, LATER)
    script = f"({{charts: {CHART_MARKS}, address: location.href, title: document.title}})"

    async with chromium() as browser:
        visit = await browser.visit(link, script)

    save_artifact("report-served.png", visit.screenshot)
    assert visit.console_errors == []
    assert visit.result["address"] == f"{url}/reports"
    assert visit.result["title"] == "Journey report"
    drawn = {c["chart"]: (c["marks"], c["drawn"]) for c in visit.result["charts"]}
    assert drawn == expected_marks(sample_report())
    assert {urlsplit(r).path for r in visit.requests} == {"/reports"}
