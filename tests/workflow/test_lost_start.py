"""A workflow start whose answer is lost keeps its ledger row when the run did start, and leaves
nothing behind when it did not (real time-skipping server; only the answer is made to fail)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from engine.domain import JourneyVersion
from engine.services.enroll import Enroller
from tests.harness import Harness, person

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


async def flaky_entry(
    harness: Harness, env: WorkflowEnvironment, start_first: bool
) -> tuple[str, JourneyVersion, datetime, Enroller]:
    """A fresh journey deployed, p1 stored, and an enroller whose starts lose their answer."""
    journey_id = f"j-{uuid.uuid4().hex[:8]}"
    now = await env.get_current_time()
    version = await harness.deploy({**SPEC, "id": journey_id}, HELLO, now)
    await harness.store.upsert_profiles([person("p1", phone="+8613800000001")])
    client = Flaky(harness.client, start_first=start_first)
    return journey_id, version, now, Enroller(harness.store, client, harness.task_queue)  # type: ignore[arg-type]


async def test_a_start_that_went_through_keeps_its_run_and_ledger_row(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    journey_id, version, now, flaky = await flaky_entry(
        harness, time_skipping_env, start_first=True
    )

    report = await flaky.enroll(version, ["p1"], now)

    assert report["started"] == 1
    result = await harness.result(journey_id, "p1")
    assert result.status == "completed"
    enrollment = await harness.store.last_enrollment(journey_id, "p1")
    assert enrollment is not None and enrollment.status == "completed"


async def test_a_start_that_never_arrived_leaves_no_ledger_row(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    journey_id, version, now, flaky = await flaky_entry(
        harness, time_skipping_env, start_first=False
    )

    with pytest.raises(RPCError):
        await flaky.enroll(version, ["p1"], now)

    assert await harness.store.last_enrollment(journey_id, "p1") is None
    # Nothing is stuck: the next attempt enters the person.
    assert (await harness.enroller.enroll(version, ["p1"], now))["started"] == 1
