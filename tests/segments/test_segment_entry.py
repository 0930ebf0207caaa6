"""Segment entry on a schedule, on the Temporal dev server with real workers and a SQLite store.

The schedule is triggered by hand (its cron would fire tomorrow at 10:00); its workflow pages
through the segment three people at a time, continuing as new between pages.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, ScheduleOverlapPolicy
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from engine.domain import Event, Profile
from engine.dsl.policy import Policy
from engine.dsl.segments import Segment
from engine.services.schedules import SegmentEntryActivities, schedule_id, sync_schedules
from engine.worker import build_worker
from engine.workflow.segment_entry import SegmentEntryInput
from tests.harness import Harness, running_worker, sqlite_store

pytestmark = pytest.mark.timeout(90)

SEGMENT = "id: carted\nname: Carted\ncondition: {event: cart_added, within: 1d}\n"


def journey(journey_id: str, entry: dict[str, Any], reentry: str = "once") -> dict[str, Any]:
    return {
        "id": journey_id,
        "name": "segment entry test",
        "entry": entry,
        "reentry": {"policy": reentry},
        "steps": [{"id": "done", "exit": {}}],
    }


async def _people(h: Harness, now: Any) -> list[str]:
    ids = [f"p{i:02d}" for i in range(9)]
    await h.store.upsert_profiles([Profile(pid) for pid in ids])
    # Seven carted within the last day; two carted too long ago.
    await h.store.record_events(
        [
            Event(f"e-{pid}", pid, "cart_added", now - timedelta(hours=2 if i < 7 else 30))
            for i, pid in enumerate(ids)
        ]
    )
    return ids[:7]


async def _run_of_next_action(client: Client, sid: str, before: int) -> dict[str, int]:
    handle = client.get_schedule_handle(sid)
    await handle.trigger()
    for _ in range(200):
        actions = (await handle.describe()).info.recent_actions
        if len(actions) > before:
            started = actions[-1].action
            result: dict[str, int] = await client.get_workflow_handle(started.workflow_id).result()
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("the schedule did not start its workflow")


async def test_schedule_enters_segment_members_once(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    journeys_dir = tmp_path / "journeys"
    (journeys_dir / "segments").mkdir(parents=True)
    (journeys_dir / "segments" / "carted.yaml").write_text(SEGMENT, encoding="utf-8")
    store = await sqlite_store(tmp_path)
    queue = f"segments-{uuid.uuid4().hex[:6]}"
    journey_id = f"seg-{uuid.uuid4().hex[:6]}"
    try:
        async with running_worker(dev_env, store, tmp_path) as h:
            now = await dev_env.get_current_time()
            members = await _people(h, now)
            spec = journey(journey_id, {"segment": "carted", "schedule": "0 10 * * *"})
            await h.deploy(spec, {}, now)
            activities = SegmentEntryActivities(store, h.enroller, pages_per_attempt=1)
            async with build_worker(h.client, queue, activities.all()):
                policy = Policy(timezone="Asia/Shanghai")
                kwargs: dict[str, Any] = {"journeys_dir": journeys_dir, "task_queue": queue}
                ids = await sync_schedules(h.client, store, policy, page_size=3, **kwargs)
                sid = schedule_id(journey_id)
                assert sid in ids
                description = await h.client.get_schedule_handle(sid).describe()
                # The server keeps the cron as a calendar: 10:00 every day, Shanghai time.
                [calendar] = description.schedule.spec.calendars
                assert (calendar.hour[0].start, calendar.minute[0].start) == (10, 0)
                assert description.schedule.spec.time_zone_name == "Asia/Shanghai"
                assert description.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP

                first = await _run_of_next_action(h.client, sid, 0)
                assert first == {"started": 7}
                entered = await store.enrollments(journey_id)
                assert sorted(e.profile_id for e in entered) == members
                # Next evaluation: everybody entered once already (reentry: once).
                second = await _run_of_next_action(h.client, sid, 1)
                assert second == {"reentry_blocked": 7}
                assert len(await store.enrollments(journey_id)) == 7

                # Deploying again updates the schedule in place; an api-entry journey has none.
                assert sid in await sync_schedules(h.client, store, policy, **kwargs)
                await h.deploy(journey(journey_id, {"api": True}), {}, now)
                for _ in range(100):  # the schedule list is eventually consistent
                    assert sid not in await sync_schedules(h.client, store, policy, **kwargs)
                    try:
                        await h.client.get_schedule_handle(sid).describe()
                    except RPCError:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the schedule of an api-entry journey was not deleted")
    finally:
        await store.aclose()


async def test_one_evaluation_never_starts_a_person_twice(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    store = await sqlite_store(tmp_path)
    queue = f"segments-{uuid.uuid4().hex[:6]}"
    journey_id = f"seg-{uuid.uuid4().hex[:6]}"
    try:
        async with running_worker(dev_env, store, tmp_path) as h:
            now = await dev_env.get_current_time()
            await _people(h, now)
            # reentry: always, and every run ends at once: only the evaluation's own ledger
            # check stops a repeated evaluation (a retried or replayed one) entering people again.
            await h.deploy(journey(journey_id, {"segment": "carted"}, reentry="always"), {}, now)
            segment = Segment.model_validate(
                {
                    "id": "carted",
                    "name": "Carted",
                    "condition": {"event": "cart_added", "within": "1d"},
                }
            )
            payload = SegmentEntryInput(
                journey_id=journey_id, segment=segment, page_size=3, evaluated_at=now
            )
            activities = SegmentEntryActivities(store, h.enroller, pages_per_attempt=1)
            async with build_worker(h.client, queue, activities.all()):
                results = []
                for attempt in range(2):
                    results.append(
                        await h.client.execute_workflow(
                            "SegmentEntryWorkflow",
                            payload,
                            id=f"evaluation-{journey_id}-{attempt}",
                            task_queue=queue,
                            result_type=dict,
                        )
                    )
            assert results == [{"started": 7}, {"already_entered": 7}]
            assert len(await store.enrollments(journey_id)) == 7
    finally:
        await store.aclose()
