"""`journey deploy` is all or nothing, against a real Temporal dev server.

This server refuses ids longer than 48 characters (``limit.maxIDLength``, as an operator may
configure it), so the schedule of a journey with a long id is refused by Temporal itself, after
the journey validated: the deploy must store no version (of any journey in the command), leave
no schedule behind, and say so in one line.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from engine.servers import find_binary
from engine.store import Store

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
LONG_ID = "spring-festival-gift-box-replenishment-2027"  # 14 + 43 characters as a schedule id
SEGMENT = "id: carted\nname: Carted\ncondition: {event: cart_added, within: 1d}\n"


def _journey(journey_id: str, schedule: str = "0 10 * * *") -> str:
    return (
        f"id: {journey_id}\nname: {journey_id}\n"
        f'entry: {{segment: carted, schedule: "{schedule}"}}\n'
        "steps:\n  - {id: done, exit: {}}\n"
    )


@pytest.fixture(scope="module")
async def strict_temporal() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")),
        dev_server_extra_args=["--dynamic-config-value", "limit.maxIDLength=48"],
    )
    yield env
    await env.shutdown()
    await asyncio.sleep(0.05)


def _deploy(tmp_path: Path, address: str, *files: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "JOURNEY_HOME": str(tmp_path / "home"),
        "JOURNEY_JOURNEYS_DIR": str(tmp_path / "journeys"),
        "JOURNEY_TEMPORAL_ADDRESS": address,
    }
    paths = [str(tmp_path / "journeys" / f) for f in files]
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "deploy", *paths],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=tmp_path,
    )


async def _versions(tmp_path: Path) -> list[tuple[str, int]]:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'home' / 'journey.db'}")
    try:
        return [(v.journey_id, v.version) for v in await store.latest_versions()]
    finally:
        await store.aclose()


async def _schedules(client: Client) -> list[str]:
    return sorted([s.id async for s in await client.list_schedules()])


def said(stderr: str) -> list[str]:
    """What the command said to its user on stderr: its lines there that are not log lines
    (logs are JSON lines on stderr when it is not a terminal)."""
    return [line for line in stderr.splitlines() if not line.startswith("{")]


def _write(tmp_path: Path, files: dict[str, str]) -> None:
    (tmp_path / "journeys" / "segments").mkdir(parents=True, exist_ok=True)
    (tmp_path / "journeys" / "segments" / "carted.yaml").write_text(SEGMENT, encoding="utf-8")
    for name, text in files.items():
        (tmp_path / "journeys" / name).write_text(text, encoding="utf-8")


async def test_a_refused_schedule_deploys_nothing_and_says_why(
    strict_temporal: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = strict_temporal.client.service_client.config.target_host
    _write(tmp_path, {"short.yaml": _journey("short"), "long.yaml": _journey(LONG_ID)})

    failed = await asyncio.to_thread(_deploy, tmp_path, address, "short.yaml", "long.yaml")
    assert failed.returncode == 1
    assert "Traceback" not in failed.stdout + failed.stderr
    assert "deployed:" not in failed.stdout
    [line] = said(failed.stderr)
    assert line.startswith(f"not deployed: Temporal refused schedule segment-entry:{LONG_ID} ")
    assert "WorkflowId exceeds maximum allowed length" in line
    assert line.endswith("no journey version was stored")
    assert await _versions(tmp_path) == []
    # short's schedule, created before long's was refused, was taken back.
    for _ in range(50):  # the schedule list is eventually consistent
        if await _schedules(strict_temporal.client) == []:
            break
        await asyncio.sleep(0.1)
    assert await _schedules(strict_temporal.client) == []

    done = await asyncio.to_thread(_deploy, tmp_path, address, "short.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [  # logs go to stderr
        f"deployed: short v1 ({tmp_path / 'journeys' / 'short.yaml'})",
        "schedules: segment-entry:short",
    ]
    again = await asyncio.to_thread(_deploy, tmp_path, address, "short.yaml")
    assert again.returncode == 0, again.stderr
    assert f"unchanged: short v1 ({tmp_path / 'journeys' / 'short.yaml'})" in again.stdout
    assert await _versions(tmp_path) == [("short", 1)]


async def test_a_version_stored_with_a_six_field_cron_is_named_until_replaced(
    strict_temporal: WorkflowEnvironment, tmp_path: Path
) -> None:
    """What the old release stored ("0 10 * * * 30" passed croniter) is named, not a traceback."""
    address = strict_temporal.client.service_client.config.target_host
    _write(tmp_path, {"other.yaml": _journey("other"), "legacy.yaml": _journey("legacy")})
    (tmp_path / "home").mkdir()
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'home' / 'journey.db'}")
    try:
        await store.migrate()
        definition = {
            "id": "legacy",
            "name": "legacy",
            "entry": {"segment": "carted", "schedule": "0 10 * * * 30"},
            "steps": [{"id": "done", "exit": {}}],
        }
        await store.deploy_version("legacy", "old", definition, {}, "", datetime.now(UTC))
    finally:
        await store.aclose()

    blocked = await asyncio.to_thread(_deploy, tmp_path, address, "other.yaml")
    assert blocked.returncode == 1
    assert "Traceback" not in blocked.stdout + blocked.stderr
    [line] = said(blocked.stderr)
    assert "journey 'legacy' v1 is deployed with a schedule this release refuses" in line
    assert "expected 5 fields" in line
    assert line.endswith("deploy a fixed version of it; no journey version was stored")

    fixed = await asyncio.to_thread(_deploy, tmp_path, address, "other.yaml", "legacy.yaml")
    assert fixed.returncode == 0, fixed.stderr
    assert await _versions(tmp_path) == [("legacy", 2), ("other", 1)]


async def test_without_temporal_a_scheduled_journey_is_not_deployed(tmp_path: Path) -> None:
    _write(tmp_path, {"short.yaml": _journey("short")})
    result = await asyncio.to_thread(_deploy, tmp_path, "127.0.0.1:1", "short.yaml")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("not deployed: Temporal is not reachable at 127.0.0.1:1")
    assert await _versions(tmp_path) == []
