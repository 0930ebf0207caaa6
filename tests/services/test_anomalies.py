"""Anomalies: each rate driven out of the journey's own baseline is found, in the hour and the
day windows, logged, and POSTed once to JOURNEY_ALERT_WEBHOOK (real SQLite, Redis, HTTP)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from structlog.testing import capture_logs
from typer.testing import CliRunner

from engine.cli.main import app
from engine.domain import Delivery, Enrollment, Event
from engine.services.anomalies import alert, find_anomalies, watch_periodically
from engine.store import Store
from tests.api.conftest import serving
from tests.harness import RedisServer, sqlite_store

pytestmark = pytest.mark.timeout(60)

AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BASE = AT - timedelta(days=3)  # in the trailing week of both windows
NOW = AT - timedelta(minutes=30)  # in the last hour (and day)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await sqlite_store(tmp_path)
    yield opened
    await opened.aclose()


async def period(
    store: Store,
    jid: str,
    at: datetime,
    *,
    sent: int,
    suppressed: int,
    failed: int,
    converted: int,
    ended: int,
    unsubscribed: int,
) -> None:
    """One period's sends, run endings and unsubscribes (by people who were sent a message)."""
    rows, people = [], []
    for status, n in (("sent", sent), ("suppressed", suppressed), ("failed", failed)):
        for _ in range(n):
            person = f"p-{uuid.uuid4().hex[:8]}"
            if status == "sent":
                people.append(person)
            rows.append(
                Delivery(uuid.uuid4().hex, jid, 1, person, "s", "sms", "t", "marketing", status, at)
            )
    await store.record_deliveries(rows)
    for i in range(ended):
        await store.create_enrollment(
            Enrollment(
                uuid.uuid4().hex,
                jid,
                1,
                f"e-{uuid.uuid4().hex[:8]}",
                at - timedelta(hours=1),
                status="converted" if i < converted else "completed",
                ended_at=at,
            )
        )
    await store.record_events(
        [Event(uuid.uuid4().hex, person, "unsubscribed", at) for person in people[:unsubscribed]]
    )


NORMAL: dict[str, int] = {
    "sent": 36,
    "suppressed": 3,
    "failed": 1,
    "converted": 12,
    "ended": 40,
    "unsubscribed": 0,
}


async def journey_with(store: Store, at: datetime = AT, **now: int) -> str:
    """A journey with a normal trailing week and, in the hour before ``at``, ``now``'s mix."""
    jid = f"j-{uuid.uuid4().hex[:6]}"
    await period(
        store,
        jid,
        at - (AT - BASE),
        sent=90,
        suppressed=8,
        failed=2,
        converted=30,
        ended=100,
        unsubscribed=1,
    )
    await period(store, jid, at - (AT - NOW), **{**NORMAL, **now})
    return jid


@pytest.mark.parametrize(
    ("rate", "window_mix"),
    [
        ("suppression", {"sent": 20, "suppressed": 20, "failed": 0}),
        ("failure", {"sent": 24, "suppressed": 3, "failed": 13}),
        ("conversion", {"converted": 2}),
        ("unsubscribe", {"unsubscribed": 8}),
    ],
)
async def test_each_rate_out_of_its_baseline_is_an_anomaly_of_the_hour_and_the_day(
    store: Store, rate: str, window_mix: dict[str, int]
) -> None:
    jid = await journey_with(store, **window_mix)
    found = await find_anomalies(store, jid, AT)
    assert {(a.rate, a.window) for a in found} == {(rate, "hour"), (rate, "day")}


async def test_a_journey_like_its_baseline_has_no_anomaly(store: Store) -> None:
    jid = await journey_with(store)
    assert await find_anomalies(store, jid, AT) == []


def alert_receiver() -> tuple[FastAPI, list[dict[str, Any]]]:
    """A webhook receiver that keeps the alerts POSTed to ``/alerts``."""
    received: list[dict[str, Any]] = []
    receiver = FastAPI()

    @receiver.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"ok": "yes"}

    @receiver.post("/alerts")
    async def take(request: Request) -> dict[str, str]:
        received.append(await request.json())
        return {"ok": "yes"}

    return receiver, received


async def test_each_anomaly_is_logged_and_posted_once(
    store: Store, redis_server: RedisServer
) -> None:
    receiver, received = alert_receiver()
    jid = await journey_with(store, failed=13, sent=24)
    found = await find_anomalies(store, jid, AT)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        async with serving(receiver) as url, httpx.AsyncClient() as http:
            with capture_logs() as logs:
                first = await alert(found, client, f"{url}/alerts", http)
                again = await alert(found, client, f"{url}/alerts", http)
    finally:
        await client.aclose()
    assert (first, again) == (2, 0)
    assert sorted((body["rate"], body["window"]) for body in received) == [
        ("failure", "day"),
        ("failure", "hour"),
    ]
    assert all(
        body["journey_id"] == jid and body["event"] == "journey_anomaly" for body in received
    )
    assert [e["rate"] for e in logs if e["event"] == "journey_anomaly"] == ["failure"] * 4


def test_the_command_names_an_unknown_journey_with_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    monkeypatch.setenv("JOURNEY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}")
    monkeypatch.setenv("JOURNEY_HOME", str(tmp_path))
    monkeypatch.setenv("JOURNEY_REDIS_URL", redis_server.url)
    result = CliRunner().invoke(app, ["anomalies", "nope"])
    assert result.exit_code == 2
    assert "unknown journey 'nope'" in result.output


async def test_journey_status_lists_the_anomalies_it_finds(store: Store) -> None:
    from engine.services.status import JourneyStatus, render

    jid = await journey_with(store, sent=20, suppressed=20, failed=0)
    lines = render(JourneyStatus(jid, "x", [], [], None, await find_anomalies(store, jid, AT)))
    assert any(
        line.startswith("anomaly: suppression rate of the last hour 50.0%") for line in lines
    )
    quiet = await journey_with(store)
    assert "anomalies: none in the last hour or day" in render(
        JourneyStatus(quiet, "y", [], [], None, await find_anomalies(store, quiet, AT))
    )


async def test_the_api_s_watcher_alerts_a_deployed_journey_by_itself(
    store: Store, redis_server: RedisServer
) -> None:
    receiver, received = alert_receiver()
    now = datetime.now(UTC)
    jid = await journey_with(store, at=now, failed=13, sent=24)
    await store.deploy_version(jid, "h", {"id": jid}, {}, "", now)
    client = aioredis.Redis.from_url(redis_server.url)
    stop = asyncio.Event()
    try:
        async with serving(receiver) as url:
            watcher = asyncio.create_task(
                watch_periodically(store, client, f"{url}/alerts", stop, every=0.2)
            )
            for _ in range(100):  # a few checks: the first alerts, the next hold it back
                if len(received) >= 2:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            stop.set()
            await watcher
    finally:
        await client.aclose()
    assert sorted((body["journey_id"], body["rate"], body["window"]) for body in received) == [
        (jid, "failure", "day"),
        (jid, "failure", "hour"),
    ]
