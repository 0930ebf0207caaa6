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
from engine.workflow.messages import ControlSignal, EventSignal, RunState
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
    # The report's "reached" counts come from the ledger path: 601 steps, short enough to be
    # handed over whole (runs longer than PATH_KEPT steps keep their older steps once each).
    assert list(enrollment.path) == ["rest", "remind"] * ROUNDS + ["rest"]

    replayer = Replayer(
        workflows=[JourneyWorkflow], data_converter=DATA_CONVERTER, workflow_runner=SANDBOX
    )
    for history in histories:
        await replayer.replay_workflow(history)


def result_workflow_id(h: Harness, journey_id: str) -> str:
    return h.handle(journey_id, "looper").id


async def test_an_event_redelivered_after_the_hand_over_changes_nothing(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    """Delivery is at least once: the event id a run saw before continuing as new is still
    known to the run after, so a redelivery sends no second thank-you."""
    env = time_skipping_env
    journey_id = f"ask-{uuid.uuid4().hex[:6]}"
    spec = {
        "id": journey_id,
        "name": "ask until clicked",
        "entry": {"api": True},
        "steps": [
            {"id": "rest", "wait": "1d"},
            {
                "id": "ask",
                "wait_for": {
                    "event": "clicked",
                    "timeout": "1d",
                    "on_event": "thank",
                    "on_timeout": "rest",
                },
            },
            {"id": "thank", "send": {"channel": "sms", "template": "hello", "next": "rest"}},
        ],
    }
    start = await env.get_current_time()
    version = await harness.deploy(spec, {"hello": {"text": "thanks!"}}, start)
    await harness.store.upsert_profiles([person("asked", phone="+8613800000010")])
    await harness.enroller.enroll(version, ["asked"], start)
    handle = harness.handle(journey_id, "asked")

    async def click(event_id: str, rounds: int) -> None:
        """Deliver ``event_id`` in the middle of round ``rounds``'s ``ask`` (2 days a round)."""
        await env.sleep(
            start + timedelta(days=2 * rounds + 1, hours=12) - await env.get_current_time()
        )
        await harness.until_step(journey_id, "asked", "ask")
        when = await env.get_current_time()
        await handle.signal(
            "event", EventSignal(name="clicked", event_id=event_id, occurred_at=when)
        )

    await click("click-1", 0)
    await click("click-1", 200)  # the same event again, after the run continued as new
    await click("click-2", 201)  # a new one is still heard
    await handle.signal("control", ControlSignal(action="stop"))
    await harness.result(journey_id, "asked")

    assert len(await chain(harness, handle.id)) >= 2, "the loop never continued as new"
    sends = await harness.store.deliveries(journey_id=journey_id)
    assert [d.send_key.split(":", 1)[1] for d in sends] == ["thank:1", "thank:2"]
