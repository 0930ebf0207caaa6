"""How runs end, as the ledger, `journey report` and `journey why` tell it: a goal event counts
by its own time, and an exit's reason is kept. Real time-skipping Temporal server, SQLite."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from engine.analytics.text import format_journey
from engine.domain import Event
from engine.dsl.models import Journey
from engine.services.why import why
from tests.harness import Harness, journey_report, person

pytestmark = pytest.mark.timeout(60)

HELLO = {"hello": {"text": "hi"}}


def journey(steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": f"j-{uuid.uuid4().hex[:8]}",
        "name": "endings",
        "entry": {"api": True},
        "steps": steps,
        **extra,
    }


async def pay(h: Harness, profile_id: str, occurred_at: datetime, now: datetime) -> None:
    await h.router.ingest(Event(uuid.uuid4().hex, profile_id, "order_paid", occurred_at), now)


async def test_a_goal_event_counts_by_its_own_time_in_the_ledger_and_the_report_alike(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    env = time_skipping_env
    spec = journey(
        [
            {"id": "pause", "wait": "3d"},
            {"id": "hi", "send": {"channel": "sms", "template": "hello"}},
            {"id": "done", "exit": {}},
        ],
        goal={"event": "order_paid", "within": "2d"},
    )
    entered = await env.get_current_time()
    version = await harness.deploy(spec, HELLO, entered)
    people = ["before", "within", "after_window", "never"]
    await harness.store.upsert_profiles([person(p, phone="+86138") for p in people])
    await harness.enroller.enroll(version, people, entered)
    await harness.until_step(spec["id"], "never", "pause")

    await env.sleep(timedelta(days=1))
    now = await env.get_current_time()
    # Paid an hour before entering, but the event reaches the run a day later (a late import, a
    # queued sender): not a conversion of this run. The old run counted it, the report did not.
    await pay(harness, "before", entered - timedelta(hours=1), now)
    await pay(harness, "within", now, now)
    await env.sleep(timedelta(days=1, hours=12))
    now = await env.get_current_time()
    await pay(harness, "after_window", now, now)  # 2.5 days after entry, the run still waiting

    statuses = {p: (await harness.result(spec["id"], p)).status for p in people}

    assert statuses == {
        "before": "completed",
        "within": "converted",
        "after_window": "completed",
        "never": "completed",
    }
    ledger = await harness.store.enrollments(spec["id"])
    report = await journey_report(harness.store, Journey.model_validate(spec))
    # The one run the ledger calls converted is the one the report counts (by event time).
    assert [e.profile_id for e in ledger if e.status == "converted"] == ["within"]
    assert report.converted == 1
    counted = {r.step: r.converted for r in report.steps}
    assert counted[spec["steps"][0]["id"]] == 1


async def test_an_exit_reason_is_kept_in_the_ledger_and_shown_by_report_and_why(
    harness: Harness, time_skipping_env: WorkflowEnvironment
) -> None:
    env = time_skipping_env
    spec = journey(
        [
            {
                "id": "value",
                "branch": [
                    {"when": {"attribute": "cart_value", "gte": 200}, "goto": "vip_done"},
                    {"else": "hi"},
                ],
            },
            {"id": "hi", "send": {"channel": "sms", "template": "hello", "next": "done"}},
            {"id": "vip_done", "exit": {"reason": "handed to a sales rep"}},
            {"id": "done", "exit": {}},
        ]
    )
    now = await env.get_current_time()
    version = await harness.deploy(spec, HELLO, now)
    await harness.store.upsert_profiles(
        [person("vip", cart_value=500, phone="+1"), person("small", cart_value=5, phone="+2")]
    )
    await harness.enroller.enroll(version, ["vip", "small"], now)

    vip = await harness.result(spec["id"], "vip")
    await harness.result(spec["id"], "small")

    assert (vip.status, vip.exit_step, vip.reason) == (
        "completed",
        "vip_done",
        "handed to a sales rep",
    )
    row = await harness.store.last_enrollment(spec["id"], "vip")
    assert row is not None and row.exit_reason == "handed to a sales rep"
    report = format_journey(await journey_report(harness.store, Journey.model_validate(spec)))
    assert "ended: completed 1; completed — handed to a sales rep 1" in report
    [line] = await why(harness.store, "vip", spec["id"])
    assert line.endswith(f"{spec['id']}/vip_done run ended: completed — handed to a sales rep")
