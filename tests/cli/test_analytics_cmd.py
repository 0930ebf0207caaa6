"""`journey report`, `kpis`, `fatigue` and `experiment size` from the command line: readable
tables, clear messages for bad input (exit 1), usage errors naming the flag (exit 2)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli.main import app
from tests.analytics.test_report import JOURNEY, T, seed
from tests.harness import sqlite_store

pytestmark = pytest.mark.timeout(60)


async def deployed(directory: Path) -> None:
    store = await sqlite_store(directory)
    await store.deploy_version(
        "cart", "h1", JOURNEY.model_dump(mode="json", by_alias=True), {}, "", T
    )
    await seed(store)
    await store.aclose()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("JOURNEY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}")
    monkeypatch.setenv("JOURNEY_HOME", str(tmp_path))
    monkeypatch.setenv("JOURNEY_JOURNEYS_DIR", str(tmp_path / "journeys"))
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "policy.yaml").write_text(
        "caps: {global: [{max: 1, per: 1d}, {max: 4, per: 7d}]}\nexperiments: {min_sample: 2}\n"
    )
    return CliRunner()


def test_report_shows_the_funnel_revenue_and_experiments(cli: CliRunner, tmp_path: Path) -> None:
    asyncio.run(deployed(tmp_path))
    result = cli.invoke(app, ["report", "cart"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "cart — cart recovery: entered 7, converted 4 (57.1%), orders 4, revenue 210.00" in out
    header = next(line for line in out.splitlines() if "reached" in line)
    assert header.split() == [
        "step",
        "reached",
        "sent",
        "suppr.",
        "failed",
        "exited",
        "conv.",
        "unknown",
        "revenue",
    ]
    assert "1 of 4 orders had no numeric 'amount'" in out
    assert "split test against holdout (95% confidence intervals)" in out
    assert "nudge / email / last_call" in out
    assert "the nine numbers" in out and "fatigue" in out
    sequential = cli.invoke(app, ["report", "--sequential"])
    assert sequential.exit_code == 0 and "always-valid 95% intervals" in sequential.output


def test_an_unknown_journey_is_named_with_the_deployed_ones(cli: CliRunner, tmp_path: Path) -> None:
    asyncio.run(deployed(tmp_path))
    result = cli.invoke(app, ["report", "nope"])
    assert result.exit_code == 1
    assert "unknown journey 'nope'; deployed: cart" in result.output


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["kpis", "--from", "2026-13-01", "--to", "2026-11-30"], "--from"),
        (["kpis", "--from", "2026-11-01", "--to", "30/11/2026"], "--to"),
        (["kpis", "--from", "2026-11-30", "--to", "2026-11-01"], "--to"),
        (["kpis", "--to", "2026-11-30"], "--from"),
        (["report", "--from", "yesterday", "--to", "2026-11-01"], "--from"),
        (["fatigue", "--window", "7x"], "--window"),
        (["experiment", "size", "--baseline", "five", "--mde", "1pt"], "--baseline"),
        (["experiment", "size", "--baseline", "5%", "--mde", "0pt"], "--mde"),
    ],
)
def test_malformed_flags_are_usage_errors_naming_the_flag(
    cli: CliRunner, args: list[str], flag: str
) -> None:
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert flag in result.output


def test_kpis_of_an_empty_period(cli: CliRunner) -> None:
    result = cli.invoke(app, ["kpis", "--from", "2026-11-01", "--to", "2026-11-30"])
    assert result.exit_code == 0, result.output
    assert (
        "the nine numbers, 2026-11-01 to 2026-11-30 (previous 30 days in brackets)" in result.output
    )
    assert "n/a (n/a)" in result.output
    assert "no customer activity in this period" in result.output


def test_fatigue_shows_the_policy_cap(cli: CliRunner, tmp_path: Path) -> None:
    asyncio.run(deployed(tmp_path))
    result = cli.invoke(app, ["fatigue", "--window", "7d", "--at", "2026-11-05"])
    assert result.exit_code == 0, result.output
    assert "policy global cap: 4 per 7d" in result.output
    # profiles created after the window (all six, by the store's clock) are not counted;
    # p2 had one marketing touch in the week, p1 and p5 two each
    assert [line.split()[:2] for line in result.output.splitlines()[2:4]] == [
        ["1", "1"],
        ["2", "2"],
    ]


def test_experiment_size_prints_people_per_arm(cli: CliRunner) -> None:
    from statsmodels.stats.proportion import samplesize_proportions_2indep_onetail

    result = cli.invoke(app, ["experiment", "size", "--baseline", "5%", "--mde", "1pt"])
    assert result.exit_code == 0, result.output
    n = math.ceil(samplesize_proportions_2indep_onetail(0.01, 0.05, 0.8))
    assert result.output.startswith(f"{n:,} people per arm to detect 5% -> 6%")
