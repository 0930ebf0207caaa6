"""Record journey histories for the replay test: ``python -m tests.workflow.record_histories``.

Re-record only on purpose (a new step kind, a patched change). The replay test then proves that
the interpreter still makes the same decisions for runs recorded by earlier versions.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from engine.domain import Event
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


async def main() -> None:
    env = await start_time_skipping()
    with tempfile.TemporaryDirectory() as tmp:
        store = await sqlite_store(Path(tmp))
        async with running_worker(env, store, Path(tmp)) as h:
            await record(h, env)
        await store.aclose()
    await env.shutdown()
    await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main())
