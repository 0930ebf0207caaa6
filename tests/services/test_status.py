"""`journey status`: budgets used and left from the cap service's Redis, progress to the target
from the report, and the pace (real Redis, SQLite)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from engine.caps.budgets import budget_key
from engine.caps.checker import CapRequest
from engine.caps.redis_caps import RedisCapService
from engine.cli.main import app
from engine.dsl.models import Budget, Journey, Target
from engine.dsl.policy import Policy
from engine.dsl.tiers import Tiers
from engine.services.status import journey_status, pace, render
from engine.store import Store
from tests.analytics.test_report import JOURNEY, T, seed
from tests.harness import RedisServer, sqlite_store

pytestmark = pytest.mark.timeout(60)

D = timedelta(days=1)


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


def journey(jid: str, target: Target | None) -> Journey:
    return JOURNEY.model_copy(
        update={"id": jid, "budget": Budget(max_sends=10, max_value=100), "target": target}
    )


async def deploy(store: Store, spec: Journey) -> None:
    await store.deploy_version(
        spec.id, "h1", spec.model_dump(mode="json", by_alias=True), {}, "", T
    )


async def test_status_shows_budget_left_progress_and_pace(
    client: aioredis.Redis, tmp_path: Path
) -> None:
    jid = "cart"  # the id seed() enrols people in
    await client.delete(budget_key("journey:cart", "used"))  # the session's Redis is shared
    # seed(): 4 conversions worth 210 in the ten days since the deploy at T.
    spec = journey(jid, Target(conversions=7, revenue=400, by=date(2026, 11, 21)))
    store = await sqlite_store(tmp_path)
    try:
        await deploy(store, spec)
        await seed(store)
        caps = RedisCapService(client, Policy())
        for i in range(3):
            sent = CapRequest(
                f"k{i}", f"p{i}", jid, "sms", 50, T, "Asia/Shanghai", budget=spec.budget, value=20
            )
            assert (await caps.reserve(sent)).allowed
        status = await journey_status(
            store, client, jid, policy=Policy(), tiers=Tiers(), now=T + 10 * D
        )
    finally:
        await store.aclose()
    lines = render(status)
    assert (
        f"budget journey:{jid}: sends 3 used of 10, 7 left; value 60 used of 100, 40 left" in lines
    )
    # Rate so far 0.4 a day and 21 a day; 9.58 days left to the end of 21 November (Shanghai).
    assert any(
        line.startswith("target conversions: 4 of 7 (57%) by 2026-11-21; projected 7.83")
        and line.endswith("— ahead")
        for line in lines
    ), lines
    assert any(
        line.startswith("target revenue: 210 of 400 (52%) by 2026-11-21; projected 411.25")
        and line.endswith("— on track")
        for line in lines
    ), lines


def test_pace_is_behind_when_the_rate_falls_short_and_met_or_missed_once_due() -> None:
    assert pace(4, 20, T, T + 10 * D, T + 20 * D) == (8, "behind")
    assert pace(4, 8, T, T + 10 * D, T + 20 * D) == (8, "on track")
    assert pace(4, 5, T, T + 10 * D, T + 20 * D) == (8, "ahead")
    assert pace(4, 5, T, T + 21 * D, T + 20 * D) == (4, "missed")
    assert pace(5, 5, T, T + 21 * D, T + 20 * D) == (5, "met")
    assert pace(0, 5, T, T, T + 20 * D) == (None, "too early")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> CliRunner:
    monkeypatch.setenv("JOURNEY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}")
    monkeypatch.setenv("JOURNEY_HOME", str(tmp_path))
    monkeypatch.setenv("JOURNEY_JOURNEYS_DIR", str(tmp_path / "journeys"))
    monkeypatch.setenv("JOURNEY_REDIS_URL", redis_server.url)
    (tmp_path / "journeys").mkdir()
    return CliRunner()


def test_journey_status_from_the_command_line(cli: CliRunner, tmp_path: Path) -> None:
    jid = f"cart-{uuid.uuid4().hex[:6]}"

    async def deployed() -> None:
        store = await sqlite_store(tmp_path)
        await deploy(store, journey(jid, Target(conversions=2000, by=date(2099, 12, 12))))
        await store.aclose()

    asyncio.run(deployed())
    result = cli.invoke(app, ["status", jid])
    assert result.exit_code == 0, result.output
    assert (
        f"budget journey:{jid}: sends 0 used of 10, 10 left; value 0 used of 100" in result.output
    )
    assert "target conversions: 0 of 2,000 (0%) by 2099-12-12" in result.output


def test_an_unknown_journey_is_exit_code_2(cli: CliRunner) -> None:
    result = cli.invoke(app, ["status", "nope"])
    assert result.exit_code == 2
    assert "unknown journey 'nope'" in result.output
