"""What an operator reads from the engine's metrics after journeys ran: journeys on the
time-skipping server, caps in a real Redis, a real webhook receiver that refuses, and the worker's
metrics endpoint scraped over HTTP and parsed with Prometheus' own parser."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from connectors.registry import ConnectorRegistry, ConnectorSettings
from engine.caps.redis_caps import RedisCapService
from engine.dsl.policy import Policy
from engine.metrics import EngineMetrics, reason_label, serving_metrics
from tests.api.conftest import serving
from tests.harness import Harness, RedisServer, person, running_worker, sqlite_store
from tests.metrics_text import dashboard_metric_names, sample_value

pytestmark = pytest.mark.timeout(120)

HELLO = {"hello": {"text": "{{ profile.first_name }}，你好"}}
ONE_A_DAY = {"caps": {"global": [{"max": 1, "per": "1d"}]}, "on_capped": {"action": "skip"}}


def refusing_receiver() -> FastAPI:
    """A webhook receiver that refuses every message for good (HTTP 400)."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/hook")
    async def hook() -> JSONResponse:
        return JSONResponse({"code": "bad_payload"}, status_code=400)

    return app


@asynccontextmanager
async def policed_worker(
    env: WorkflowEnvironment, redis: RedisServer, directory: Path
) -> AsyncIterator[Harness]:
    """A worker with one-a-day caps in Redis, SMS to the console and webhooks to a receiver that
    refuses them."""
    client = aioredis.Redis.from_url(redis.url)
    store = await sqlite_store(directory)
    async with serving(refusing_receiver()) as receiver, httpx.AsyncClient() as http:
        registry = ConnectorRegistry.from_settings(
            ConnectorSettings(
                console_path=directory / "outbox.jsonl",
                channels={"sms": "console", "webhook": "webhook"},
                webhook_url=f"{receiver}/hook",
                webhook_secret="metrics-test-secret-0123456789",
            ),
            http,
        )
        caps = RedisCapService(client, Policy.model_validate(ONE_A_DAY))
        try:
            async with running_worker(
                env, store, directory, caps=caps, connectors=registry
            ) as harness:
                yield harness
        finally:
            await registry.aclose()
            await store.aclose()
            await client.aclose()


def one_send(journey_id: str, channel: str) -> dict[str, Any]:
    return {
        "id": journey_id,
        "name": journey_id,
        "entry": {"api": True},
        "steps": [{"id": "hello", "send": {"channel": channel, "template": "hello"}}],
    }


async def test_sends_refusals_entries_and_provider_errors_are_served_by_the_worker(
    time_skipping_env: WorkflowEnvironment, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = time_skipping_env
    tag = uuid.uuid4().hex[:6]  # Redis outlives the test: people and journeys of its own
    earlier, promo, hook = (f"{name}-{tag}" for name in ("earlier", "promo", "hook"))
    people = [person(f"p{i}-{tag}", phone=f"+8613900000{i:03d}") for i in range(4)]
    async with policed_worker(env, redis_server, tmp_path) as h:
        now = await env.get_current_time()
        await h.store.upsert_profiles([*people, person(f"recipient-{tag}")])
        # The first person had today's one message from another journey already.
        first = await h.deploy(one_send(earlier, "sms"), HELLO, now)
        await h.enroller.enroll(first, [people[0].id], now)
        await h.result(earlier, people[0].id, skip_time=False)
        version = await h.deploy(one_send(promo, "sms"), HELLO, now)
        assert (await h.enroller.enroll(version, [p.id for p in people], now))["started"] == 4
        for p in people:
            await h.result(promo, p.id, skip_time=False)
        # Entering them again: the journey lets each person in once.
        await h.enroller.enroll(version, [p.id for p in people], now)
        refused = await h.deploy(one_send(hook, "webhook"), HELLO, now)
        await h.enroller.enroll(refused, [f"recipient-{tag}"], now)
        await h.result(hook, f"recipient-{tag}", skip_time=False)

        with serving_metrics(h.metrics.registry, "127.0.0.1", 0) as port:
            async with httpx.AsyncClient() as http:
                response = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    text = response.text
    families = list(text_string_to_metric_families(text))

    sms = {"journey_id": promo, "channel": "sms"}
    assert sample_value(families, "journey_sends_total", status="sent", **sms) == 3
    assert sample_value(families, "journey_sends_total", status="suppressed", **sms) == 1
    assert (
        sample_value(
            families, "journey_suppressions_total", status="suppressed", reason="global:1/1d", **sms
        )
        == 1
    )
    entries = {"journey_id": promo, "entry": "api"}
    assert sample_value(families, "journey_enrollments_total", outcome="started", **entries) == 4
    assert (
        sample_value(families, "journey_enrollments_total", outcome="reentry_blocked", **entries)
        == 4
    )
    # The refusing receiver: a failed send, a permanent provider error, no suppression.
    webhook = {"journey_id": hook, "channel": "webhook"}
    assert sample_value(families, "journey_sends_total", status="failed", **webhook) == 1
    assert sample_value(families, "journey_suppressions_total", **webhook) == 0
    assert (
        sample_value(
            families,
            "journey_connector_errors_total",
            connector="webhook",
            channel="webhook",
            kind="permanent",
        )
        == 1
    )
    # Timed: every provider call (1 + 3 SMS, 1 webhook) and every cap check (1 + 4 + 1).
    assert sample_value(families, "journey_connector_seconds_count", connector="console") == 4
    assert sample_value(families, "journey_connector_seconds_count", connector="webhook") == 1
    assert sample_value(families, "journey_cap_check_seconds_count") == 6
    profile_ids = [*(p.id for p in people), f"recipient-{tag}"]
    assert tag in text and not any(pid in text for pid in profile_ids)  # never a profile id


def _exported_names(metrics: EngineMetrics) -> set[str]:
    """The series names the engine's registry exports, by metric type."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in suffixes[family.type]
    }


def test_the_dashboard_reads_only_series_the_engine_exports() -> None:
    wanted = {name for name in dashboard_metric_names() if name.startswith("journey_")}
    exported = _exported_names(EngineMetrics())
    assert wanted <= exported, wanted - exported
    # Every engine metric has a panel.
    families = {name.rsplit("_", 1)[0] for name in wanted} | wanted
    assert {family.name for family in EngineMetrics().registry.collect()} <= families


def test_reasons_become_bounded_labels() -> None:
    assert reason_label("global:1/1d") == "global:1/1d"
    assert reason_label("arbitration_lost:cart-recovery") == "arbitration_lost:cart-recovery"
    # Free text (an error message naming a person's value) is cut off.
    assert reason_label("template:cart_a: 'coupon' is undefined") == "template:cart_a"
    assert reason_label(None) == "none"
    assert len(reason_label("x" * 500)) == 80
