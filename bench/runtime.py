"""History cost and throughput of the journey interpreter against a hand-written workflow.

Both run the cart-recovery path of journeys/cart_recovery.yaml for people below the VIP threshold
who land in copy A or B and never pay: wait 1h, read the profile for the branch, send, wait 2d for
``order_paid`` (times out), send the last call, write the ledger. The hand-written workflow does the
same timers and calls the same activities, with no interpreter around them. Both run on the
embedded stack (Temporal dev server with SQLite persistence, Redis), on one worker, in one process;
rounds alternate so machine noise hits both. Waits are scaled so a run takes about a second.

    python -m bench.runtime [--runs 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from bench.handwritten import HandWrittenCartRecovery
from connectors.registry import ConnectorRegistry, ConnectorSettings
from engine.activities.journey import JourneyActivities
from engine.caps.checker import AllowAll
from engine.domain import Enrollment, JourneyVersion, Profile
from engine.dsl.models import Journey, SplitStep
from engine.servers import free_port
from engine.services.deploy import deploy_file
from engine.services.enroll import Enroller
from engine.stack import EmbeddedStack, StackPorts
from engine.store import Store
from engine.temporal import workflow_id
from engine.worker import SANDBOX
from engine.workflow.journey import JourneyWorkflow, pick_variant, split_bucket
from engine.workflow.messages import JourneyInput

REPO = Path(__file__).resolve().parent.parent
TIME_SCALE = 49 * 3600.0  # the 49 simulated hours of the path take one second


def people(count: int, split: SplitStep, journey_id: str, tag: str) -> list[Profile]:
    """People who take the measured path: cart under 200, variant A or B (not the holdout)."""
    chosen: list[Profile] = []
    n = 0
    while len(chosen) < count:
        n += 1
        pid = f"{tag}{n:06d}"
        if pick_variant(split, split_bucket(journey_id, split.id, pid))[0] != "holdout":
            attributes = {
                "first_name": "测",
                "cart_value": 99,
                "email": f"{pid}@example.com",
                "phone": "+8613800000000",
                "wecom_external_userid": f"wm{pid}",
            }
            chosen.append(Profile(id=pid, attributes=attributes))
    return chosen


async def timed(
    start_all: Callable[[], Awaitable[list[str]]], client: Client
) -> tuple[float, list[str]]:
    began = time.perf_counter()
    ids = await start_all()
    await asyncio.gather(*(client.get_workflow_handle(i).result() for i in ids))
    return time.perf_counter() - began, ids


async def events_per_run(client: Client, ids: list[str], sample: int = 20) -> float:
    counts = []
    for wid in ids[:sample]:
        counts.append(
            len([e async for e in client.get_workflow_handle(wid).fetch_history_events()])
        )
    return statistics.mean(counts)


async def main(runs: int, rounds: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="journey-bench-"))
    stack = EmbeddedStack(home, StackPorts(free_port(), free_port(), free_port()))
    client = await stack.start()
    store = Store.from_url(f"sqlite+aiosqlite:///{home / 'journey.db'}")
    http = httpx.AsyncClient()
    registry = ConnectorRegistry.from_settings(
        ConnectorSettings(
            console_path=home / "outbox.jsonl",
            channels={c: "console" for c in ("email", "sms", "wecom", "console")},
        ),
        http,
    )
    try:
        await store.migrate()
        now = datetime.now(UTC)
        version, _ = await deploy_file(store, REPO / "journeys" / "cart_recovery.yaml", now)
        queue = f"bench-{uuid.uuid4().hex[:6]}"
        activities = JourneyActivities(store, AllowAll(), registry)
        enroller = Enroller(store, client, queue, time_scale=TIME_SCALE)
        journey = enroller.journey(version)
        split = next(s for s in journey.steps if isinstance(s, SplitStep))
        worker = Worker(
            client,
            task_queue=queue,
            workflows=[JourneyWorkflow, HandWrittenCartRecovery],
            activities=activities.all(),
            workflow_runner=SANDBOX,
            max_concurrent_workflow_task_polls=10,
        )
        results: dict[str, list[float]] = {"journey": [], "hand-written": []}
        events: dict[str, float] = {}
        async with worker:
            for round_ in range(rounds):
                for kind in ("hand-written", "journey"):
                    group = people(runs, split, journey.id, f"r{round_}{kind[0]}")
                    await store.upsert_profiles(group)
                    if kind == "journey":
                        start = functools.partial(start_journey, enroller, version, group)
                    else:
                        start = functools.partial(
                            start_hand_written_all, client, store, queue, version, group
                        )
                    seconds, ids = await timed(start, client)
                    results[kind].append(runs / seconds)
                    events[kind] = await events_per_run(client, ids)
        base, ours = (
            statistics.median(results["hand-written"]),
            statistics.median(results["journey"]),
        )
        print(f"{runs} runs per round, {rounds} rounds; embedded stack (SQLite persistence)")
        print(f"{'':<16}{'runs/s (median)':>18}{'history events/run':>22}")
        print(f"{'hand-written':<16}{base:>18.1f}{events['hand-written']:>22.1f}")
        print(f"{'journey':<16}{ours:>18.1f}{events['journey']:>22.1f}")
        print(f"throughput ratio journey/hand-written: {ours / base:.2f}x (aim >= 0.8x)")
        print(
            f"history events ratio journey/hand-written: "
            f"{events['journey'] / events['hand-written']:.2f}x (aim <= 1.25x)"
        )
    finally:
        await registry.aclose()
        await http.aclose()
        await store.aclose()
        await stack.stop()


async def start_journey(
    enroller: Enroller, version: JourneyVersion, group: list[Profile]
) -> list[str]:
    await enroller.enroll(version, [p.id for p in group], datetime.now(UTC))
    journey = enroller.journey(version)
    return [workflow_id(journey.id, p.id) for p in group]


async def start_hand_written_all(
    client: Client, store: Store, queue: str, version: JourneyVersion, group: list[Profile]
) -> list[str]:
    journey = Journey.model_validate(version.definition)
    return list(
        await asyncio.gather(
            *(start_hand_written(client, store, queue, journey, version.version, p) for p in group)
        )
    )


async def start_hand_written(
    client: Client, store: Store, queue: str, journey: Journey, version: int, profile: Profile
) -> str:
    """The same ledger row and start call as the enroller, so starting costs the same."""
    enrollment = Enrollment(
        id=uuid.uuid4().hex,
        journey_id="hand-written",
        journey_version=version,
        profile_id=profile.id,
        entered_at=datetime.now(UTC),
    )
    await store.create_enrollment(enrollment)
    wid = workflow_id("hand-written", profile.id)
    await client.start_workflow(
        "HandWrittenCartRecovery",
        JourneyInput(
            journey=journey,
            version=version,
            profile_id=profile.id,
            enrollment_id=enrollment.id,
            time_scale=TIME_SCALE,
        ),
        id=wid,
        task_queue=queue,
    )
    return wid


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.rounds))
