"""`journey runs` and `journey inspect` on the real dev server, with a real worker and store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from temporalio.testing import WorkflowEnvironment

from engine.services.runs import (
    RunRow,
    RunsError,
    format_inspection,
    inspect,
    ledger_summary,
    list_runs,
)
from tests.harness import person, running_worker, sqlite_store

pytestmark = pytest.mark.timeout(90)

T = TypeVar("T")
HELLO = {"hello": {"text": "hi"}}


def _journey(journey_id: str) -> dict[str, object]:
    """Says hello, then waits a day for an order (the tests do not wait that long)."""
    return {
        "id": journey_id,
        "name": "runs view",
        "entry": {"api": True},
        "steps": [
            {"id": "hi", "send": {"channel": "sms", "template": "hello"}},
            {
                "id": "wait_pay",
                "wait_for": {"event": "order_paid", "timeout": "1d", "on_event": "done"},
            },
            {"id": "done", "exit": {"reason": "paid"}},
        ],
    }


async def _eventually(
    fetch: Callable[[], Awaitable[T]], until: Callable[[T], bool], within: float = 15.0
) -> T:
    """Visibility is eventually consistent: poll with a deadline."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await fetch()
        if until(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.2)


async def test_runs_lists_a_journeys_runs_by_step_and_status(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    journey_id = f"runs-{uuid.uuid4().hex[:6]}"
    store = await sqlite_store(tmp_path)
    async with running_worker(dev_env, store, tmp_path) as h:
        now = await dev_env.get_current_time()
        version = await h.deploy(_journey(journey_id), HELLO, now)
        await store.upsert_profiles([person(p, phone="+86138") for p in ("a1", "a2")])
        await h.enroller.enroll(version, ["a1", "a2"], now)
        for pid in ("a1", "a2"):
            await h.until_step(journey_id, pid, "wait_pay")

        def waiting(rows: list[RunRow]) -> bool:
            return len(rows) == 2 and all(r.step == "wait_pay" for r in rows)

        rows = await _eventually(
            lambda: list_runs(dev_env.client, journey_id, step="wait_pay", status="running"),
            waiting,
        )
        assert sorted(r.profile_id or "" for r in rows) == ["a1", "a2"]
        assert {r.status for r in rows} == {"running"}
        assert all(r.workflow_id.startswith(f"journey:{journey_id}:") for r in rows)
        assert await list_runs(dev_env.client, journey_id, step="done") == []
        assert await list_runs(dev_env.client, journey_id, status="completed") == []
        assert await ledger_summary(store, journey_id) == "ledger: 2 active"
        with pytest.raises(RunsError, match="unknown status 'asleep'"):
            await list_runs(dev_env.client, journey_id, status="asleep")
        for pid in ("a1", "a2"):
            await h.handle(journey_id, pid).terminate(reason="test over")
    await store.aclose()


async def test_inspect_shows_the_live_state_the_path_and_the_send_decisions(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    journey_id = f"inspect-{uuid.uuid4().hex[:6]}"
    store = await sqlite_store(tmp_path)
    async with running_worker(dev_env, store, tmp_path) as h:
        now = await dev_env.get_current_time()
        version = await h.deploy(_journey(journey_id), HELLO, now)
        await store.upsert_profiles([person("b1", phone="+86138")])
        await h.enroller.enroll(version, ["b1"], now)
        await h.until_step(journey_id, "b1", "wait_pay")

        seen = await inspect(dev_env.client, store, "b1", journey_id)
        lines = format_inspection(seen)
        assert lines[0].startswith(f"{journey_id} v1 (entered ")
        assert lines[0].endswith(": active")
        assert lines[1].startswith("  now at wait_pay: active, waiting for order_paid until ")
        assert lines[2] == "  path: hi > wait_pay"
        assert lines[3] == "send decisions:"
        assert f"{journey_id}/hi sms (hello): sent" in lines[4]

        await h.handle(journey_id, "b1").terminate(reason="test over")
    await store.aclose()


async def test_inspect_a_person_without_runs_says_so(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    store = await sqlite_store(tmp_path)
    seen = await inspect(dev_env.client, store, "nobody")
    assert format_inspection(seen) == ["nobody: no runs recorded"]
    await store.aclose()
