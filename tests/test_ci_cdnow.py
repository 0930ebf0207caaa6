"""CI finds the CDNOW data relative to the checkout only, and says plainly when it is absent."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "cdnow"


def _find(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """.ci/cdnow run from a checkout at ``root / "checkout"``."""
    ci = root / "checkout" / ".ci"
    ci.mkdir(parents=True, exist_ok=True)
    shutil.copy(SCRIPT, ci / "cdnow")
    clean = {k: v for k, v in os.environ.items() if k != "JOURNEY_CDNOW_PATH"}
    return subprocess.run(
        ["bash", str(ci / "cdnow")],
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean, **env},
        cwd=root,
    )


def test_absent_data_is_said_and_nothing_else_is_looked_at(tmp_path: Path) -> None:
    result = _find(tmp_path)
    assert result.returncode == 0
    assert result.stdout == ""  # not another machine's copy (the old fallback found one)
    assert result.stderr.startswith(
        "CDNOW data set absent: no file at ../shared/data/cdnow/CDNOW_master.txt"
    )
    assert "the CDNOW import tests will be skipped" in result.stderr


def test_the_shared_folder_beside_the_checkout_is_found(tmp_path: Path) -> None:
    data = tmp_path / "shared" / "data" / "cdnow" / "CDNOW_master.txt"
    data.parent.mkdir(parents=True)
    data.write_text("00001 19970101 1 11.77\n", encoding="utf-8")
    result = _find(tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{data}\n", "")


def test_a_given_path_that_does_not_exist_is_said(tmp_path: Path) -> None:
    result = _find(tmp_path, JOURNEY_CDNOW_PATH=str(tmp_path / "nowhere.txt"))
    assert result.stdout == ""
    assert f"no file at {tmp_path / 'nowhere.txt'}" in result.stderr
