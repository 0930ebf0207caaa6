"""A workflow start whose answer is lost keeps its ledger row when the run did start, and leaves
nothing behind when it did not (real time-skipping server; only the answer is made to fail)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from engine.enroll import Enroller
from tests.harness import Harness, person, running_worker, sqlite_store

pytestmark = pytest.mark.timeout(60)

SPEC = {
    "name": "lost answers",
    "entry": {"api": True},
    "steps": [
        {"id": "hi", "send": {"channel": "sms", "template": "hello"}},
        {"id": "done", "exit": {}},
    ],
}
HELLO = {"hello": {"text": "你好"}}


class Flaky:
    """The real client, but ``start_workflow`` fails after (or before) reaching the server."""

    def __init__(self, client: Client, *, start_first: bool) -> None:
        self._client = client
        self._start_first = start_first

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def start_workflow(self, *args: Any, **kwargs: Any) -> Any:
        if self._start_first:
            await self._client.start_workflow(*args, **kwargs)
        raise RPCError("deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment, tmp_path: Path):  # type: ignore[no-untyped-def]
    store = await sqlite_store(tmp_path)
    async with running_worker(time_skipping_env, store, tmp_path) as h:
        yield h
    await store.aclose()


async def test_a_start_that_went_through_keeps_its_run_and_ledger_row(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    spec = {**SPEC, "id": f"j-{uuid.uuid4().hex[:8]}"}
    now = await time_skipping_env.get_current_time()
    version = await harness.deploy(spec, HELLO, now)
    await harness.store.upsert_profiles([person("p1", phone="+8613800000001")])
    flaky = Enroller(
        harness.store,
        Flaky(harness.client, start_first=True),
        harness.task_queue,  # type: ignore[arg-type]
    )

    report = await flaky.enroll(version, ["p1"], now)

    assert report["started"] == 1
    result = await harness.result(spec["id"], "p1")
    assert result.status == "completed"
    enrollment = await harness.store.last_enrollment(spec["id"], "p1")
    assert enrollment is not None and enrollment.status == "completed"


async def test_a_start_that_never_arrived_leaves_no_ledger_row(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    spec = {**SPEC, "id": f"j-{uuid.uuid4().hex[:8]}"}
    now = await time_skipping_env.get_current_time()
    version = await harness.deploy(spec, HELLO, now)
    await harness.store.upsert_profiles([person("p1", phone="+8613800000001")])
    flaky = Enroller(
        harness.store,
        Flaky(harness.client, start_first=False),
        harness.task_queue,  # type: ignore[arg-type]
    )

    with pytest.raises(RPCError):
        await flaky.enroll(version, ["p1"], now)

    assert await harness.store.last_enrollment(spec["id"], "p1") is None
    # Nothing is stuck: the next attempt enters the person.
    assert (await harness.enroller.enroll(version, ["p1"], now))["started"] == 1
