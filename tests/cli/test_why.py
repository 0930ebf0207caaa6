"""`journey why` explains each send attempt for a person from the delivery log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli.main import app
from engine.domain import Delivery
from tests.harness import sqlite_store

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def delivery(key: str, status: str, reason: str | None, **detail: str) -> Delivery:
    return Delivery(
        send_key=key,
        journey_id="cart-recovery",
        journey_version=1,
        profile_id="p1",
        step_id="nudge",
        channel="sms",
        template="cart_b",
        category="marketing",
        status=status,  # type: ignore[arg-type]
        created_at=T0,
        reason=reason,
        detail=dict(detail),
    )


async def seed(directory: Path) -> None:
    store = await sqlite_store(directory)
    await store.record_delivery(
        delivery("k1", "deferred", "global:1/1d", count="1", max="1", retry_at="2026-11-25T02:00Z")
    )
    await store.record_delivery(delivery("k2", "suppressed", "arbitration_lost:vip-journey"))
    await store.aclose()


def test_why_names_the_rule_the_count_and_when_it_frees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(seed(tmp_path))
    monkeypatch.setenv("JOURNEY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'journey.db'}")
    monkeypatch.setenv("JOURNEY_HOME", str(tmp_path))

    result = CliRunner().invoke(app, ["why", "p1"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "held — global:1/1d (1 of 1 used); frees at 2026-11-25T02:00Z" in lines[0]
    assert "not sent — arbitration_lost:vip-journey" in lines[1]
    assert CliRunner().invoke(app, ["why", "nobody"]).output.strip() == (
        "no send attempts recorded for nobody"
    )
