"""`journey api` refuses to listen without keys, or with short keys beyond loopback, at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.api.auth import exposure_problem

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]


def _api(tmp_path: Path, host: str, keys: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "JOURNEY_API_KEYS"}
    if keys is not None:
        env["JOURNEY_API_KEYS"] = keys
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "api", "--host", host, "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        # Nothing listens there: a command that got past the key check would fail on it.
        env={**env, "PYTHONPATH": str(REPO), "JOURNEY_TEMPORAL_ADDRESS": "127.0.0.1:1"},
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("host", "keys", "said"),
    [
        ("0.0.0.0", None, "no API keys configured: set JOURNEY_API_KEYS"),
        ("127.0.0.1", "[]", "no API keys configured: set JOURNEY_API_KEYS"),
        (
            "0.0.0.0",
            '["change-me"]',  # the fallback the compose file used to supply
            "API key 1 of JOURNEY_API_KEYS has 9 characters: listening on 0.0.0.0",
        ),
        ("::", '["a-long-enough-key-1", "short"]', "API key 2 of JOURNEY_API_KEYS has 5"),
        ("0.0.0.0", "", "invalid settings: JOURNEY_API_KEYS is not valid JSON"),
        ("0.0.0.0", "change-me", "invalid settings: JOURNEY_API_KEYS is not valid JSON"),
    ],
)
def test_the_api_refuses_to_start_and_says_why(
    tmp_path: Path, host: str, keys: str | None, said: str
) -> None:
    result = _api(tmp_path, host, keys)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith(said), result.stderr
    assert "change-me" not in result.stderr  # a key is never echoed


def test_short_keys_are_for_loopback_only() -> None:
    assert exposure_problem(["dev"], "127.0.0.1") is None
    assert exposure_problem(["dev"], "::1") is None
    assert exposure_problem(["dev"], "localhost") is None
    assert exposure_problem(["dev"], "api.internal") is not None  # may be any interface
    assert exposure_problem(["x" * 16], "0.0.0.0") is None
