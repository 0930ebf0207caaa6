"""`journey report --html` writes the page; `journey report --link` prints a signed link that the
API accepts (same secret under JOURNEY_HOME, or JOURNEY_REPORT_SECRET)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from engine.cli.main import app
from engine.report_links import ALL, read_report_token
from engine.services.deploy import deploy_file
from engine.settings import Settings
from tests.harness import sqlite_store

JOURNEYS = Path(__file__).resolve().parents[2] / "journeys"


async def deploy(directory: Path, *names: str) -> None:
    store = await sqlite_store(directory)
    try:
        for name in names:
            await deploy_file(store, JOURNEYS / name, datetime.now(UTC))
    finally:
        await store.aclose()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    asyncio.run(deploy(tmp_path, "cart_recovery.yaml", "welcome.yaml"))
    monkeypatch.setenv("JOURNEY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}")
    monkeypatch.setenv("JOURNEY_HOME", str(tmp_path))
    monkeypatch.setenv("JOURNEY_JOURNEYS_DIR", str(JOURNEYS))
    monkeypatch.setenv("JOURNEY_PUBLIC_URL", "https://journeys.example.com/")
    return tmp_path


def test_link_opens_one_journey_for_as_long_as_asked(home: Path) -> None:
    before = datetime.now(UTC)

    result = CliRunner().invoke(app, ["report", "cart-recovery", "--link", "--valid-for", "2h"])

    assert result.exit_code == 0, result.output
    link = urlsplit(result.output.strip())
    assert (link.scheme, link.netloc, link.path) == (
        "https",
        "journeys.example.com",
        "/reports/cart-recovery",
    )
    token = parse_qs(link.query)["token"][0]
    secret = Settings().resolved_report_secret()
    assert read_report_token(secret, token, before + timedelta(minutes=119)) == "cart-recovery"
    with pytest.raises(ValueError, match="expired"):
        read_report_token(secret, token, before + timedelta(hours=2, seconds=5))


def test_link_without_ids_opens_every_journey(home: Path) -> None:
    result = CliRunner().invoke(app, ["report", "--link"])

    assert result.exit_code == 0, result.output
    link = urlsplit(result.output.strip())
    assert link.path == "/reports"
    token = parse_qs(link.query)["token"][0]
    assert read_report_token(Settings().resolved_report_secret(), token, datetime.now(UTC)) == ALL


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--link"], "unknown journey 'nope'; deployed: cart-recovery, welcome"),
        (["cart-recovery", "welcome", "--link"], "give one id or none"),
        (["--link", "--valid-for", "soon"], "--valid-for: expected a duration"),
        (["cart-recovery", "nope", "--html", "out.html"], "unknown journey 'nope'"),
    ],
)
def test_bad_requests_say_why_and_write_nothing(
    home: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(home)

    result = CliRunner().invoke(app, ["report", *args])

    assert result.exit_code == 1
    assert message in result.output
    assert not (home / "out.html").exists()


def test_html_writes_one_self_contained_page(home: Path) -> None:
    pytest.importorskip("engine.analytics.report", reason="build_report comes with analytics")
    page = home / "reports" / "report.html"

    result = CliRunner().invoke(app, ["report", "--html", str(page)])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"report written to {page.resolve()}"
    html = page.read_text(encoding="utf-8")
    assert "加购未购挽回" in html and "cart-recovery" in html and "welcome" in html
    assert "<script" not in html.lower()
