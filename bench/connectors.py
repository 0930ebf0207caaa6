"""Sends per second through the send activity against calling the connector directly.

Both sides use the console connector writing JSON lines to a file. "Direct" calls
``connector.send`` with ready-made messages; "activity" runs ``JourneyActivities.send`` (in
Temporal's activity environment, without a server): the send's facts (earlier outcome, profile,
consent) in one read shared with the sends running at the same time, cap reservation (allow-all),
template render, connector, the delivery row in a commit shared the same way (SQLite). The ratio
is what the send path costs on top of the provider call; rounds alternate so machine noise hits
both. A breakdown then says where an activity's time goes (each store call, the render, the
connector), one send at a time (batches of one), measured on the same run. Logs are filtered to
warnings: the terminal is not what is measured.

    python -m bench.connectors [--sends 2000] [--concurrency 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog
from ruamel.yaml import YAML
from temporalio.testing import ActivityEnvironment

from connectors.base import OutboundMessage
from connectors.registry import ConnectorRegistry, ConnectorSettings
from engine.activities.journey import JourneyActivities
from engine.caps.checker import AllowAll
from engine.deploy import deploy_journey
from engine.domain import Profile
from engine.dsl.models import Journey
from engine.store import Store
from engine.templates import render_message
from engine.workflow.messages import SendInput

TEMPLATE = {
    "text": "【鲜果铺】{{ profile.first_name | default('朋友') }}，"
    "购物车里的{{ profile.cart_value }}元好物今天下单立减10元。回T退订"
}


async def bounded(count: int, concurrency: int, one: Callable[[int], Awaitable[object]]) -> float:
    """Seconds to run ``one(i)`` for every i, at most ``concurrency`` at a time."""
    slots = asyncio.Semaphore(concurrency)

    async def run(i: int) -> None:
        async with slots:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(count)))
    return time.perf_counter() - started


class Timed:
    """A proxy adding up the seconds spent in each awaited method of ``inner``."""

    def __init__(self, inner: Any, prefix: str) -> None:
        self._inner = inner
        self._prefix = prefix
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(value):
            return value

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await value(*args, **kwargs)
            finally:
                self.seconds[f"{self._prefix}.{name}"] += time.perf_counter() - started
                self.calls[f"{self._prefix}.{name}"] += 1

        return timed


async def main(sends: int, concurrency: int, rounds: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        store = Store.from_url(f"sqlite+aiosqlite:///{directory / 'journey.db'}")
        await store.migrate()
        (directory / "templates").mkdir()
        with (directory / "templates" / "offer.yaml").open("w", encoding="utf-8") as out:
            YAML().dump(TEMPLATE, out)
        journey = Journey.model_validate(
            {
                "id": "bench",
                "name": "bench",
                "entry": {"api": True},
                "steps": [{"id": "offer", "send": {"channel": "sms", "template": "offer"}}],
            }
        )
        now = datetime.now(UTC)
        version, _ = await deploy_journey(store, journey, directory / "templates", now)
        people = [
            Profile(
                f"p{i:06d}", {"first_name": "小明", "cart_value": 99, "phone": "+8613800000000"}
            )
            for i in range(sends)
        ]
        await store.upsert_profiles(people)

        async with httpx.AsyncClient() as http:
            registry = ConnectorRegistry.from_settings(
                ConnectorSettings(console_path=directory / "outbox.jsonl"), http
            )
            connector = registry.for_channel("sms")
            activities = JourneyActivities(store, AllowAll(), registry)
            environment = ActivityEnvironment()

            def direct_round() -> Callable[[int], Awaitable[object]]:
                tag = uuid.uuid4().hex[:8]
                messages = [
                    OutboundMessage(
                        send_key=f"{tag}:{p.id}",
                        channel="sms",
                        to="+8613800000000",
                        content={"text": f"【鲜果铺】{p.id}，购物车里的99元好物今天下单立减10元"},
                        metadata={"journey_id": "bench", "profile_id": p.id},
                    )
                    for p in people
                ]
                return lambda i: connector.send(messages[i])

            def send_inputs() -> list[SendInput]:
                tag = uuid.uuid4().hex[:8]
                return [
                    SendInput(
                        send_key=f"{tag}:{p.id}",
                        journey_id="bench",
                        version=version.version,
                        profile_id=p.id,
                        step_id="offer",
                        channel="sms",
                        template="offer",
                        category="marketing",
                        priority=50,
                        at=now,
                        timezone="Asia/Shanghai",
                    )
                    for p in people
                ]

            def activity_round() -> Callable[[int], Awaitable[object]]:
                inputs = send_inputs()

                async def one(i: int) -> object:
                    result = await environment.run(activities.send, inputs[i])
                    assert result.status == "sent", result
                    return result

                return one

            rates: dict[str, list[float]] = {"direct": [], "activity": []}
            await bounded(min(sends, 200), concurrency, activity_round())  # warm caches
            for _ in range(rounds):
                for name, make in (("direct", direct_round), ("activity", activity_round)):
                    seconds = await bounded(sends, concurrency, make())
                    rates[name].append(sends / seconds)

            # Where the time goes, one send at a time so the parts add up to the whole.
            timed_store = Timed(store, "store")
            timed_connector = Timed(connector, "connector")

            class OneConnector:
                def for_channel(self, channel: str) -> Any:
                    return timed_connector

            breakdown = JourneyActivities(timed_store, AllowAll(), OneConnector())  # type: ignore[arg-type]
            sample = min(sends, 300)
            inputs = send_inputs()[:sample]
            started = time.perf_counter()
            for item in inputs:
                await environment.run(breakdown.send, item)
            whole = time.perf_counter() - started
            context = {"journey": {"id": "bench"}, "step": {"id": "offer"}}
            started = time.perf_counter()
            for person in people[:sample]:
                render_message(version.templates, "offer", person, context)
            parts = {**timed_store.seconds, **timed_connector.seconds}
            parts["render"] = time.perf_counter() - started
            await registry.aclose()
        await store.aclose()

    direct = statistics.median(rates["direct"])
    through = statistics.median(rates["activity"])
    print(f"sends: {sends} x {rounds} rounds, concurrency {concurrency}, console connector")
    print(f"connector directly:    {direct:10.0f} sends/s")
    print(f"through send activity: {through:10.0f} sends/s")
    print(f"ratio activity/direct: {through / direct:10.2f}x  (aim >= 0.70x)")
    print(
        f"where one send's time goes (sequential, {sample} sends, {whole / sample * 1e3:.2f} ms):"
    )
    for name, seconds in sorted(parts.items(), key=lambda item: -item[1]):
        print(f"  {name:<24} {seconds / sample * 1e3:8.3f} ms  {seconds / whole:6.1%}")
    print(f"  {'other':<24} {(whole - sum(parts.values())) / sample * 1e3:8.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    asyncio.run(main(options.sends, options.concurrency, options.rounds))
