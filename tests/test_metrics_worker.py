"""``journey worker`` serves the engine's metrics on JOURNEY_METRICS_PORT and the Temporal SDK's on
JOURNEY_TEMPORAL_METRICS_PORT: a real worker process, Temporal server, Redis and SQLite, scraped
over HTTP and parsed with Prometheus' own parser."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML
from temporalio.testing import WorkflowEnvironment

from engine.dsl.models import Journey
from engine.servers import free_port
from engine.services.deploy import deploy_journey
from engine.services.enroll import Enroller
from tests.harness import (
    RedisServer,
    person,
    sqlite_store,
    start_worker_process,
    stop_processes,
    wait_until,
)
from tests.metrics_text import dashboard_metric_names, sample_value

pytestmark = pytest.mark.timeout(120)

PEOPLE = 3


async def _scrape(url: str) -> str | None:
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(url)
    except httpx.TransportError:
        return None
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_the_worker_serves_its_sends_and_the_temporal_sdk_metrics_on_their_ports(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, redis_server: RedisServer
) -> None:
    env = time_skipping_env
    store = await sqlite_store(tmp_path)
    templates = tmp_path / "templates"
    templates.mkdir()
    YAML().dump({"text": "{{ profile.first_name }}"}, templates / "t.yaml")
    journey = Journey.model_validate(
        {
            "id": f"metrics-{uuid.uuid4().hex[:6]}",
            "name": "n",
            "entry": {"api": True},
            "steps": [{"id": "hello", "send": {"channel": "sms", "template": "t"}}],
        }
    )
    now = await env.get_current_time()
    version, _ = await deploy_journey(store, journey, templates, now)
    tag = uuid.uuid4().hex[:6]  # Redis outlives the test: people of its own
    people = [person(f"{tag}-{i}", phone=f"+8613800000{i:03d}") for i in range(PEOPLE)]
    await store.upsert_profiles(people)

    queue = f"metrics-{tag}"
    engine_port, temporal_port = free_port(), free_port()
    worker = start_worker_process(
        env,
        tmp_path / "journey.db",
        queue,
        tmp_path / "worker.log",
        redis_server,
        {
            "JOURNEY_CONSOLE_PATH": str(tmp_path / "outbox.jsonl"),
            "JOURNEY_CHANNELS": json.dumps({"sms": "console"}),
            "JOURNEY_METRICS_PORT": str(engine_port),
            "JOURNEY_TEMPORAL_METRICS_PORT": str(temporal_port),
        },
    )
    engine_url = f"http://127.0.0.1:{engine_port}/metrics"
    temporal_url = f"http://127.0.0.1:{temporal_port}/metrics"
    try:

        async def serving() -> bool:
            return await _scrape(engine_url) is not None

        await wait_until(serving, within=60)
        enroller = Enroller(store, env.client, queue)
        assert (await enroller.enroll(version, [p.id for p in people], now))["started"] == PEOPLE

        async def all_done() -> bool:
            runs = await store.enrollments(journey.id)
            return all(e.status == "completed" for e in runs)

        await wait_until(all_done, within=60)
        engine_text = await _scrape(engine_url)
        temporal_text = await _scrape(temporal_url)
    finally:
        stop_processes(worker)
    await store.aclose()

    assert engine_text is not None and temporal_text is not None
    engine = list(text_string_to_metric_families(engine_text))
    labels = {"journey_id": journey.id, "channel": "sms"}
    assert sample_value(engine, "journey_sends_total", status="sent", **labels) == PEOPLE
    assert sample_value(engine, "journey_connector_seconds_count", connector="console") == PEOPLE
    assert sample_value(engine, "journey_cap_check_seconds_count") == PEOPLE
    assert tag not in engine_text  # never a profile id

    temporal = list(text_string_to_metric_families(temporal_text))
    # The parser names counter samples ``_total``; the SDK serves them without (as Prometheus
    # stores them, and the dashboard asks).
    completed = sample_value(
        temporal,
        "temporal_workflow_completed_total",
        task_queue=queue,
        workflow_type="JourneyWorkflow",
    )
    assert completed == PEOPLE
    # What the Grafana dashboard asks of the SDK is what it serves.
    served = {
        line.split("{")[0].split(" ")[0]
        for line in temporal_text.splitlines()
        if line and not line.startswith("#")
    }
    wanted = {name for name in dashboard_metric_names() if name.startswith("temporal_")}
    assert wanted and wanted <= served, wanted - served
    # Workflow-task latencies come in buckets fine enough to read a p99 under and over 1 s.
    for name in ("execution", "schedule_to_start"):
        buckets = {
            float(sample.labels["le"])
            for family in temporal
            if family.name == f"temporal_workflow_task_{name}_latency"
            for sample in family.samples
            if sample.name.endswith("_bucket")
        }
        assert {750, 1500, 3000} <= buckets, (name, sorted(buckets))


@pytest.mark.parametrize("variable", ["JOURNEY_METRICS_PORT", "JOURNEY_TEMPORAL_METRICS_PORT"])
def test_a_taken_metrics_port_stops_the_worker_with_one_line(variable: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "engine.cli.main", "worker"],
            env={
                **os.environ,
                variable: str(port),
                # Never reached: the ports are bound before Temporal is asked for.
                "JOURNEY_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
                "JOURNEY_LOG_FORMAT": "json",
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    [line] = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert line.startswith(f"{variable}: cannot serve ") and f"127.0.0.1:{port}" in line, line
