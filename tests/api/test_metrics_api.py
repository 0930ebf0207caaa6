"""GET /metrics on the API: behind the API keys, Prometheus' text format, the entries made
through the API and the runs in flight per journey (a real server, store and Temporal)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import KEYS, Api
from tests.harness import person
from tests.metrics_text import sample_value

pytestmark = pytest.mark.timeout(60)

WAITING = {"name": "n", "steps": [{"id": "pause", "wait": "30d"}]}


async def test_metrics_want_an_api_key(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        missing = await anonymous.get("/metrics")
        wrong = await anonymous.get("/metrics", headers={"Authorization": "Bearer nope"})
        second_key = await anonymous.get(
            "/metrics", headers={"Authorization": f"Bearer {KEYS[1]}".encode()}
        )
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert second_key.status_code == 200
    assert second_key.headers["content-type"].startswith("text/plain")
    assert list(text_string_to_metric_families(second_key.text))


async def test_metrics_count_entries_by_kind_and_the_runs_in_flight(api: Api) -> None:
    now = datetime.now(UTC)
    for journey_id, entry in (
        ("vip-call", {"api": True}),
        ("on-signup", {"event": "signed_up"}),
        ("idle", {"api": True}),
    ):
        await api.harness.deploy({**WAITING, "id": journey_id, "entry": entry}, {}, now)
    await api.store.upsert_profiles([person("p1"), person("p2"), person("p3")])

    trigger = await api.client.post(
        "/v1/journeys/vip-call/trigger", json={"profile_ids": ["p1", "p2", "ghost"]}
    )
    event = await api.client.post(
        "/v1/events", json={"events": [{"profile_id": "p3", "name": "signed_up"}]}
    )
    assert trigger.status_code == 200 and event.status_code == 200, (trigger.text, event.text)
    scraped = await api.client.get("/metrics")

    assert scraped.status_code == 200
    families = list(text_string_to_metric_families(scraped.text))
    entries = "journey_enrollments_total"
    started = {"entry": "api", "outcome": "started"}
    assert sample_value(families, entries, journey_id="vip-call", **started) == 2
    assert sample_value(families, entries, journey_id="vip-call", outcome="missing") == 1
    assert sample_value(families, entries, journey_id="on-signup", entry="event") == 1
    live = {
        s.labels["journey_id"]: s.value
        for family in families
        for s in family.samples
        if s.name == "journey_live_runs"
    }
    assert live == {"vip-call": 2, "on-signup": 1, "idle": 0}
