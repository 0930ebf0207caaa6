"""A journey that loops for years stays bounded: its run continues as new and goes on as one.

300 rounds of ``wait 1d -> send -> back`` on the time-skipping server: the histories stay under
the documented threshold, every send keeps its own key, and a goal event delivered after the
hand-over still converts by the original entry time.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from engine.domain import Event
from engine.temporal import DATA_CONVERTER
from engine.worker import SANDBOX
from engine.workflow.journey import CONTINUE_AS_NEW_AT, JourneyWorkflow
from engine.workflow.messages import RunState
from tests.harness import Harness, person
from tests.workflow.record_histories import chain, weekly_reminder

pytestmark = pytest.mark.timeout(600)

ROUNDS = 300
STEP_EVENTS = 40
"""History events one step may add after the threshold check (a wait, or a send and its
retries), and the run's ending."""


async def test_a_300_round_loop_continues_as_new_and_goes_on_as_one_run(
    harness: Harness, time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    env = time_skipping_env
    spec = weekly_reminder(f"loop-{uuid.uuid4().hex[:6]}")
    start = await env.get_current_time()
    version = await harness.deploy(spec, {"hello": {"text": "still thinking?"}}, start)
    await harness.store.upsert_profiles([person("looper", phone="+8613800000009")])
    assert (await harness.enroller.enroll(version, ["looper"], start))["started"] == 1

    await env.sleep(timedelta(days=ROUNDS, hours=12))
    # Mid-way through round 301, long after the hand-over: the operator view still answers.
    state: RunState = await harness.handle(spec["id"], "looper").query(
        "state", result_type=RunState
    )
    assert (state.status, state.step, state.version) == ("active", "rest", version.version)
    # Paid on day 10, inside the 30-day window from the entry, reported only now.
    paid = Event(uuid.uuid4().hex, "looper", "order_paid", start + timedelta(days=10))
    await harness.router.ingest(paid, await env.get_current_time())
    result = await harness.result(spec["id"], "looper")

    assert (result.status, result.reason) == ("converted", "order_paid")
    histories = await chain(harness, result_workflow_id(harness, spec["id"]))
    assert len(histories) >= 2, "the loop never continued as new"
    assert all(len(h.events) < CONTINUE_AS_NEW_AT + STEP_EVENTS for h in histories)
    deliveries = await harness.store.deliveries(journey_id=spec["id"])
    keys = Counter(d.send_key for d in deliveries)
    assert len(keys) == ROUNDS and set(keys.values()) == {1}
    assert {d.status for d in deliveries} == {"sent"}
    assert Counter(line["to"] for line in harness.sent_lines()) == {"+8613800000009": ROUNDS}
    enrollment = await harness.store.last_enrollment(spec["id"], "looper")
    assert enrollment is not None and enrollment.status == "converted"
    # The report's "reached" counts come from the ledger path: every step is in it, once the
    # runs before the last have handed over only their last PATH_KEPT steps.
    assert {"rest", "remind"} <= set(enrollment.path)
    assert len(enrollment.path) < 2 * ROUNDS  # 601 steps were taken

    replayer = Replayer(
        workflows=[JourneyWorkflow], data_converter=DATA_CONVERTER, workflow_runner=SANDBOX
    )
    for history in histories:
        await replayer.replay_workflow(history)


def result_workflow_id(h: Harness, journey_id: str) -> str:
    return h.handle(journey_id, "looper").id
