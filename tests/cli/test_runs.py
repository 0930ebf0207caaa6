"""`journey runs` and `journey inspect` from the command line: bad input and a Temporal out of
reach are one line on stderr, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli.main import app
from engine.servers import free_port

pytestmark = pytest.mark.timeout(60)


def test_an_unknown_status_is_refused_before_connecting(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["runs", "cart-recovery", "--status", "sleeping"],
        env={"JOURNEY_HOME": str(tmp_path), "JOURNEY_TEMPORAL_ADDRESS": "127.0.0.1:1"},
    )
    assert result.exit_code == 2
    assert "unknown status 'sleeping': use one of running, completed" in result.output


def test_inspect_without_temporal_says_where_it_looked(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        app,
        ["inspect", "p1"],
        env={"JOURNEY_HOME": str(tmp_path), "JOURNEY_TEMPORAL_ADDRESS": address},
    )
    assert result.exit_code == 1
    assert f"cannot reach Temporal at {address}" in result.output
    assert "Traceback" not in result.output
