"""Record journey histories for the replay test: ``python -m tests.workflow.record_histories``
records every step kind (timeout, vip, converts); ``... evicted`` records only the run evicted
mid-wait; ``... looped`` the two runs of a loop that continued as new.

Re-record only on purpose (a new step kind, a patched change). The replay test then proves that
the interpreter still makes the same decisions for runs recorded by earlier versions.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from engine.domain import Event
from engine.servers import find_binary
from engine.store import Store
from engine.temporal import DATA_CONVERTER, SEARCH_ATTRIBUTE_KEYS, run_chain
from engine.workflow.messages import RunResult
from tests.harness import Harness, person, running_worker, sqlite_store, start_time_skipping

HERE = Path(__file__).parent / "histories"

EVERY_STEP_KIND: dict[str, Any] = {
    "id": "recorded",
    "name": "every step kind",
    "entry": {"api": True},
    "goal": {"event": "order_paid", "within": "14d"},
    "exit_on": [{"event": "unsubscribed"}],
    "steps": [
        {"id": "pause", "wait": "1h"},
        {"id": "morning", "wait": {"until": "10:00"}},
        {
            "id": "value",
            "branch": [
                {"when": {"attribute": "cart_value", "gte": 200}, "goto": "vip"},
                {"else": "test"},
            ],
        },
        {
            "id": "test",
            "split": [
                {"variant": "A", "weight": 50, "goto": "copy"},
                {"variant": "B", "weight": 50, "goto": "copy"},
            ],
        },
        {"id": "copy", "send": {"channel": "sms", "template": "hello", "next": "mark"}},
        {"id": "vip", "send": {"channel": "wecom", "template": "hello", "next": "mark"}},
        {"id": "mark", "update": {"add_tags": ["nudged"]}},
        {
            "id": "wait_pay",
            "wait_for": {"event": "order_paid", "timeout": "2d", "on_timeout": "last"},
        },
        {"id": "last", "send": {"channel": "email", "template": "hello"}},
        {"id": "done", "exit": {}},
    ],
}

PEOPLE = {
    "timeout": dict(cart_value=50, phone="+1", email="t@example.com"),
    "vip": dict(cart_value=500, wecom_external_userid="wm1", email="v@example.com"),
    "converts": dict(cart_value=50, phone="+2", email="c@example.com"),
}


async def record(h: Harness, env: WorkflowEnvironment) -> None:
    now = await env.get_current_time()
    version = await h.deploy(EVERY_STEP_KIND, {"hello": {"text": "hi {{ profile.id }}"}}, now)
    await h.store.upsert_profiles([person(pid, **attrs) for pid, attrs in PEOPLE.items()])
    await h.enroller.enroll(version, list(PEOPLE), now)
    await h.until_step("recorded", "converts", "pause")
    await env.sleep(timedelta(hours=30))
    paid = await env.get_current_time()
    await h.router.ingest(Event("paid-1", "converts", "order_paid", paid), paid)
    for pid in PEOPLE:
        await h.result("recorded", pid)
        history = await h.handle("recorded", pid).fetch_history()
        (HERE / f"{pid}.json").write_text(
            json.dumps(json.loads(history.to_json()), indent=1) + "\n", encoding="utf-8"
        )
        print(f"recorded {pid}: {len(history.events)} events")


EVICTED: dict[str, Any] = {
    "id": "evicted",
    "name": "evicted mid-wait",
    "entry": {"api": True},
    "goal": {"event": "order_paid", "within": "14d"},
    "steps": [
        {"id": "pause", "wait": "1h"},
        {"id": "morning", "wait": {"until": "10:00"}},
        {"id": "hi", "send": {"channel": "sms", "template": "hello"}},
        {"id": "hold", "wait": "30d"},
        {"id": "done", "exit": {"reason": "no order"}},
    ],
}
EVICTED_SCALE = 86400
"""A simulated day per second, as the demo: on the dev server (real time) the run reaches its
30-day hold within about a second, and its time-of-day wait takes the patched path."""


@contextmanager
def unraisable_errors() -> Iterator[list[BaseException | None]]:
    """Errors Python could only print ("Exception ignored in ..."), such as a workflow coroutine
    closed outside its event loop when a worker drops it from its cache."""
    caught: list[BaseException | None] = []
    before = sys.unraisablehook
    sys.unraisablehook = lambda report: caught.append(report.exc_value)
    try:
        yield caught
        gc.collect()
    finally:
        sys.unraisablehook = before


async def evict_mid_wait(
    env: WorkflowEnvironment, store: Store, directory: Path
) -> tuple[RunResult, WorkflowHistory, list[BaseException | None]]:
    """A run whose worker shuts down (evicting it) during a 30-day wait, taken over by a second
    worker on the same task queue and converted there: its result, its history and what the
    shutdown printed. ``env`` is a dev server (its sticky queues hand work on when a worker
    leaves; the time-skipping server's do not)."""
    spec = {**EVICTED, "id": f"evicted-{uuid.uuid4().hex[:6]}"}
    jid = spec["id"]
    with unraisable_errors() as printed:
        async with running_worker(env, store, directory, time_scale=EVICTED_SCALE) as first:
            now = await env.get_current_time()
            version = await first.deploy(spec, {"hello": {"text": "hi"}}, now)
            await store.upsert_profiles([person("evicted", phone="+3")])
            await first.enroller.enroll(version, ["evicted"], now)
            await first.until_step(jid, "evicted", "hold", within=30)
            # Paid the day before entering, delivered now: not this run's conversion.
            early = Event(uuid.uuid4().hex, "evicted", "order_paid", now - timedelta(days=1))
            await first.router.ingest(early, await env.get_current_time())
        # Leaving the block shut the worker down, evicting the run in the middle of its wait.
    async with running_worker(
        env, store, directory, time_scale=EVICTED_SCALE, task_queue=first.task_queue
    ) as second:
        paid = await env.get_current_time()
        await second.router.ingest(Event(uuid.uuid4().hex, "evicted", "order_paid", paid), paid)
        result = await second.result(jid, "evicted")
        history = await second.handle(jid, "evicted").fetch_history()
    return result, history, printed


async def record_evicted(directory: Path, store: Store) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")),
        data_converter=DATA_CONVERTER,
        search_attributes=list(SEARCH_ATTRIBUTE_KEYS),
    )
    try:
        result, history, printed = await evict_mid_wait(env, store, directory)
    finally:
        await env.shutdown()
    assert result.status == "converted" and not printed, (result, printed)
    (HERE / "evicted.json").write_text(
        json.dumps(json.loads(history.to_json()), indent=1) + "\n", encoding="utf-8"
    )
    print(f"recorded evicted: {len(history.events)} events")


def weekly_reminder(journey_id: str) -> dict[str, Any]:
    """A reminder until the person buys (a day apart, so 300 rounds are 300 days)."""
    return {
        "id": journey_id,
        "name": "remind until paid",
        "entry": {"api": True},
        "goal": {"event": "order_paid", "within": "30d"},
        "steps": [
            {"id": "rest", "wait": "1d"},
            {"id": "remind", "send": {"channel": "sms", "template": "hello", "next": "rest"}},
        ],
    }


async def chain(h: Harness, workflow_id: str) -> list[WorkflowHistory]:
    """The histories of every run of ``workflow_id``, first to last."""
    latest = await h.client.get_workflow_handle(workflow_id).fetch_history()
    started = latest.events[0].workflow_execution_started_event_attributes
    runs = await run_chain(h.client, workflow_id, started.first_execution_run_id)
    return [history for _, history in runs]


async def record_looped(h: Harness, env: WorkflowEnvironment, rounds: int = 200) -> None:
    """A reminder loop long enough to continue as new once, converted in its second run: both
    runs' histories, gzipped (the first is about 2,000 events)."""
    spec = weekly_reminder("looped")
    now = await env.get_current_time()
    version = await h.deploy(spec, {"hello": {"text": "still thinking?"}}, now)
    await h.store.upsert_profiles([person("looper", phone="+4")])
    await h.enroller.enroll(version, ["looper"], now)
    await env.sleep(timedelta(days=rounds, hours=12))
    paid = Event("paid-loop", "looper", "order_paid", now + timedelta(days=10))
    await h.router.ingest(paid, await env.get_current_time())
    await h.result("looped", "looper")
    histories = await chain(h, h.handle("looped", "looper").id)
    assert len(histories) == 2, len(histories)
    for name, history in zip(("looped-first", "looped-last"), histories, strict=True):
        with gzip.open(HERE / f"{name}.json.gz", "wt", encoding="utf-8") as out:
            out.write(history.to_json())
        print(f"recorded {name}: {len(history.events)} events")


async def main(which: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await sqlite_store(Path(tmp))
        if which == "evicted":
            await record_evicted(Path(tmp), store)
        else:
            env = await start_time_skipping()
            async with running_worker(env, store, Path(tmp)) as h:
                await (record_looped if which == "looped" else record)(h, env)
            await env.shutdown()
        await store.aclose()
    await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "all"))
