"""`journey demo`, the README's first command, end to end on its embedded stack (a smaller
population on free ports): it finishes, prints each journey's funnel and writes the report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.servers import free_port

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_runs_to_its_report(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "JOURNEY_HOME": str(tmp_path / "home"),
        "JOURNEY_JOURNEYS_DIR": str(REPO / "journeys"),
    }
    ports = [str(free_port()) for _ in range(3)]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli.main",
            "demo",
            "--profiles",
            "200",
            "--temporal-port",
            ports[0],
            "--ui-port",
            ports[1],
            "--redis-port",
            ports[2],
        ],
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    for journey in ("cart-recovery", "welcome", "winback"):
        assert f"\n{journey} — " in done.stdout
    report = tmp_path / "home" / "report.html"
    assert f"report: {report}" in done.stdout
    page = report.read_text(encoding="utf-8")
    assert "<svg" in page and "cart-recovery" in page
    assert (tmp_path / "home" / "demo-messages.jsonl").stat().st_size > 0
