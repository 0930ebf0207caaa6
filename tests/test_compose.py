"""docker-compose.yml: no fallback secrets, nothing unauthenticated published beyond loopback.

Checked with `docker-compose config` (the file is never started here: no Docker engine)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        shutil.which("docker-compose") is None,
        reason="docker-compose is not installed (apt-get install docker-compose)",
    ),
]

REPO = Path(__file__).resolve().parents[1]
KEYS = '["compose-check-0123456789abcdef"]'
SECRET = "compose-check-unsubscribe-secret"
REQUIRED = ("JOURNEY_API_KEYS", "JOURNEY_UNSUBSCRIBE_SECRET")


def _config(**variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED}
    return subprocess.run(
        ["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, **variables},
        cwd=REPO,
    )


def _published(port: Any) -> tuple[str | None, int]:
    """(host address or None for every interface, port) from either syntax compose prints."""
    if isinstance(port, dict):
        return port.get("host_ip"), int(port["published"])
    parts = str(port).split("/")[0].split(":")  # [ip:]published:target
    return (parts[0] if len(parts) == 3 else None), int(parts[-2])


@pytest.mark.parametrize("missing", REQUIRED)
@pytest.mark.parametrize("value", [None, ""])
def test_a_missing_or_empty_secret_stops_compose_with_its_name(
    missing: str, value: str | None
) -> None:
    given = {"JOURNEY_API_KEYS": KEYS, "JOURNEY_UNSUBSCRIBE_SECRET": SECRET}
    del given[missing]
    if value is not None:
        given[missing] = value
    result = _config(**given)
    assert result.returncode != 0
    assert f"set {missing} to a " in result.stderr


def test_the_api_gets_the_given_keys_and_only_the_api_is_published_widely() -> None:
    result = _config(JOURNEY_API_KEYS=KEYS, JOURNEY_UNSUBSCRIBE_SECRET=SECRET)
    assert result.returncode == 0, result.stderr
    assert "change-me" not in result.stdout
    services: dict[str, Any] = YAML(typ="safe").load(result.stdout)["services"]
    assert services["api"]["environment"]["JOURNEY_API_KEYS"] == KEYS
    assert services["api"]["environment"]["JOURNEY_UNSUBSCRIBE_SECRET"] == SECRET
    published = {
        name: [_published(port) for port in service["ports"]]
        for name, service in services.items()
        if service.get("ports")
    }
    assert published == {
        "api": [(None, 8000)],
        "temporal": [("127.0.0.1", 7233)],
        "temporal-ui": [("127.0.0.1", 8233)],
    }
