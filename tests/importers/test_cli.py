"""The data commands end to end: import a slice of CDNOW, preview segments as of a date."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from engine.cli.data_cmd import register

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("JOURNEY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("JOURNEY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'j.db'}")
    monkeypatch.setenv("JOURNEY_JOURNEYS_DIR", str(REPO / "journeys"))
    app = typer.Typer()
    app.command()(lambda: None)  # a second command keeps the groups as sub-commands
    register(app)
    return app


def test_import_cdnow_then_preview(cli: typer.Typer, cdnow_path: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    head = tmp_path / "cdnow_head.txt"
    head.write_text("\n".join(cdnow_path.read_text().splitlines()[:301]) + "\n")
    result = runner.invoke(cli, ["import", "cdnow", str(head)])
    assert result.exit_code == 0, result.output
    assert "purchases: 300, new events: 300" in result.output
    result = runner.invoke(cli, ["import", "cdnow", str(head)])
    assert "new events: 0" in result.output

    result = runner.invoke(
        cli, ["segment", "preview", "tier_bronze", "--today", "1998-01-01", "--sample", "2"]
    )
    assert result.exit_code == 0, result.output
    first, *sample = result.output.splitlines()
    assert first.startswith("tier_bronze (Tier: bronze) as of 1998-01-01T00:00:00+00:00: ")
    assert int(first.rsplit(" ", 1)[1]) > 0
    assert len(sample) == 2 and all(s.strip().startswith("cdnow-") for s in sample)


def test_errors_are_one_line_and_exit_1(cli: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["segment", "preview", "no_such_segment"])
    assert result.exit_code == 1 and "no such file" in result.output
    bad = tmp_path / "bad.txt"
    bad.write_text("customer_id date cds dollars\n00001 1997x101 1 1.00\n")
    result = runner.invoke(cli, ["import", "cdnow", str(bad)])
    assert result.exit_code == 1 and f"{bad}:2:" in result.output
