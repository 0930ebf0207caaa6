"""docker-compose.yml: no fallback secrets, nothing unauthenticated published beyond loopback,
Prometheus and Grafana wired to what the engine serves.

Checked with `docker-compose config` (the file is never started here: no Docker engine)."""

from __future__ import annotations

import json
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
METRICS_KEY = "compose-check-metrics-0123456789"
KEYS = f'["compose-check-0123456789abcdef", "{METRICS_KEY}"]'
SECRET = "compose-check-unsubscribe-secret"
GIVEN = {
    "JOURNEY_API_KEYS": KEYS,
    "JOURNEY_UNSUBSCRIBE_SECRET": SECRET,
    "JOURNEY_METRICS_KEY": METRICS_KEY,
    "GRAFANA_ADMIN_PASSWORD": "compose-check-grafana",
}
REQUIRED = tuple(GIVEN)
WORKERS = ("workflow-worker", "activity-worker")
"""One service polls workflow tasks, the other activity tasks (`journey worker --only`)."""


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
    given = dict(GIVEN)
    del given[missing]
    if value is not None:
        given[missing] = value
    result = _config(**given)
    assert result.returncode != 0
    assert f"set {missing} to a " in result.stderr


def test_the_api_gets_the_given_keys_and_only_the_api_is_published_widely() -> None:
    result = _config(**GIVEN)
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
        "prometheus": [("127.0.0.1", 9090)],
        "grafana": [("127.0.0.1", 3000)],
    }


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume["target"]
        else:
            source, target = str(volume).split(":")[:2]
        if source.startswith(("/", ".")):
            mounts[target] = Path(source) if source.startswith("/") else REPO / source
    return mounts


def test_prometheus_scrapes_what_the_api_and_workers_serve_and_grafana_loads_the_dashboard() -> (
    None
):
    result = _config(**GIVEN)
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = YAML(typ="safe").load(result.stdout)["services"]
    worker = services["activity-worker"]["environment"]
    assert services["workflow-worker"]["environment"] == worker
    prometheus = services["prometheus"]
    assert prometheus["environment"]["JOURNEY_METRICS_KEY"] == METRICS_KEY
    config_path = _mounts(prometheus)["/etc/prometheus/prometheus.yml"]
    config = YAML(typ="safe").load(config_path.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {
        name: {(n, sd["port"]) for sd in job["dns_sd_configs"] for n in sd["names"]}
        for name, job in jobs.items()
    }
    assert targets == {
        "journey-api": {("api", 8000)},
        "journey-worker": {(name, int(worker["JOURNEY_METRICS_PORT"])) for name in WORKERS},
        "temporal-sdk": {(name, int(worker["JOURNEY_TEMPORAL_METRICS_PORT"])) for name in WORKERS},
    }
    assert worker["JOURNEY_METRICS_HOST"] == "0.0.0.0"
    # The API's /metrics wants a key: the one the entrypoint writes where the job reads it.
    key_file = jobs["journey-api"]["authorization"]["credentials_file"]
    assert key_file in " ".join(prometheus["command"])
    assert "authorization" not in jobs["journey-worker"]

    grafana = _mounts(services["grafana"])
    provisioning = grafana["/etc/grafana/provisioning"]
    [datasource] = YAML(typ="safe").load(
        (provisioning / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    [provider] = YAML(typ="safe").load(
        (provisioning / "dashboards" / "journey-engine.yml").read_text(encoding="utf-8")
    )["providers"]
    dashboards = grafana[provider["options"]["path"]]
    dashboard = json.loads((dashboards / "journey-engine.json").read_text(encoding="utf-8"))
    uids = {
        target["datasource"]["uid"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }
    assert uids == {datasource["uid"]}
