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

The console connector is at-most-once (a file does not drop a repeated line), so its activity
writes an ``attempting`` claim before the call. Its activity is then measured against the same
connector declared idempotent (the send path without the claim), rounds alternating: the ratio
is what the claim costs.

The same pair is then measured with the webhook connector (idempotent: no claim) posting to a
local HTTP receiver in its own process: a provider call that costs what a real one costs the
sender, without the network.

    python -m bench.connectors [--sends 2000] [--concurrency 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog
from pydantic import SecretStr
from ruamel.yaml import YAML
from temporalio.testing import ActivityEnvironment

from bench.child import child_server
from connectors.base import DeliveryReceipt, OutboundMessage
from connectors.console import ConsoleConnector
from connectors.registry import BUILTIN_FACTORIES, ConnectorRegistry, ConnectorSettings
from engine.activities.journey import JourneyActivities
from engine.caps.checker import AllowAll
from engine.domain import Profile
from engine.dsl.models import Journey
from engine.servers import free_port
from engine.services.deploy import deploy_journey
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


class AsIfIdempotent:
    """The console connector declared idempotent: its send path without the at-most-once claim."""

    delivery = "idempotent"

    def __init__(self, inner: ConsoleConnector) -> None:
        self.inner = inner
        self.name = inner.name

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        return await self.inner.send(message)

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextlib.asynccontextmanager
async def receiver(app: str = "bench.receiver:app") -> AsyncIterator[str]:
    """bench.receiver (``app``) in a child process on a free port; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--port", str(port)]
    flags = ["--log-level", "warning", "--no-access-log", "--lifespan", "off"]
    url = f"http://127.0.0.1:{port}/hook"
    async with child_server([*command, *flags], lambda c: c.post(url, content=b"{}"), "receiver"):
        yield url


class Bench:
    """One store, one deployed journey per channel, and the people; measures a channel."""

    def __init__(self, store: Store, people: list[Profile], concurrency: int) -> None:
        self.store = store
        self.people = people
        self.concurrency = concurrency
        self.versions: dict[str, int] = {}
        self.environment = ActivityEnvironment()

    async def deploy(self, channel: str, templates: Path, now: datetime) -> None:
        journey = Journey.model_validate(
            {
                "id": f"bench_{channel}",
                "name": "bench",
                "entry": {"api": True},
                "steps": [{"id": "offer", "send": {"channel": channel, "template": "offer"}}],
            }
        )
        version, _ = await deploy_journey(self.store, journey, templates, now)
        self.versions[channel] = version.version

    def inputs(self, channel: str) -> list[SendInput]:
        tag = uuid.uuid4().hex[:8]
        return [
            SendInput(
                send_key=f"{tag}:{p.id}",
                journey_id=f"bench_{channel}",
                version=self.versions[channel],
                profile_id=p.id,
                step_id="offer",
                channel=channel,
                template="offer",
                category="marketing",
                priority=50,
                at=datetime.now(UTC),
                timezone="Asia/Shanghai",
            )
            for p in self.people
        ]

    async def rates(
        self, channel: str, registry: ConnectorRegistry, rounds: int
    ) -> tuple[float, float]:
        """Median sends/s (direct, through the activity), rounds alternating."""
        connector = registry.for_channel(channel)
        activities = JourneyActivities(self.store, AllowAll(), registry)
        sends = len(self.people)

        def direct_round() -> Callable[[int], Awaitable[object]]:
            tag = uuid.uuid4().hex[:8]
            messages = [
                OutboundMessage(
                    send_key=f"{tag}:{p.id}",
                    channel=channel,
                    to=p.id if channel == "webhook" else "+8613800000000",
                    content={"text": f"【鲜果铺】{p.id}，购物车里的99元好物今天下单立减10元"},
                    metadata={"journey_id": "bench", "profile_id": p.id},
                )
                for p in self.people
            ]
            return lambda i: connector.send(messages[i])

        def activity_round() -> Callable[[int], Awaitable[object]]:
            return self.activity_round(channel, activities)

        found: dict[str, list[float]] = {"direct": [], "activity": []}
        await bounded(min(sends, 200), self.concurrency, activity_round())  # warm caches
        for _ in range(rounds):
            for name, make in (("direct", direct_round), ("activity", activity_round)):
                seconds = await bounded(sends, self.concurrency, make())
                found[name].append(sends / seconds)
        return statistics.median(found["direct"]), statistics.median(found["activity"])

    def activity_round(
        self, channel: str, activities: JourneyActivities
    ) -> Callable[[int], Awaitable[object]]:
        inputs = self.inputs(channel)

        async def one(i: int) -> object:
            result = await self.environment.run(activities.send, inputs[i])
            assert result.status == "sent", result
            return result

        return one

    async def claim_cost(self, registry: ConnectorRegistry, rounds: int) -> tuple[float, float]:
        """Median activity sends/s of the console with its claim and without (declared
        idempotent), rounds alternating so machine noise hits both."""
        activities = JourneyActivities(self.store, AllowAll(), registry)
        found: dict[str, list[float]] = {"sms": [], "unclaimed": []}
        for _ in range(rounds):
            for channel in found:
                seconds = await bounded(
                    len(self.people), self.concurrency, self.activity_round(channel, activities)
                )
                found[channel].append(len(self.people) / seconds)
        return statistics.median(found["sms"]), statistics.median(found["unclaimed"])

    async def breakdown(
        self, registry: ConnectorRegistry, templates: dict[str, dict[str, str]], sample: int
    ) -> tuple[float, dict[str, float], dict[str, int]]:
        """Seconds per part of ``sample`` console sends, one at a time (batches of one), and the
        calls made to each store method and the connector."""
        timed_store = Timed(self.store, "store")
        timed_connector = Timed(registry.for_channel("sms"), "connector")

        class OneConnector:
            def for_channel(self, channel: str) -> Any:
                return timed_connector

        activities = JourneyActivities(timed_store, AllowAll(), OneConnector())  # type: ignore[arg-type]
        inputs = self.inputs("sms")[:sample]
        started = time.perf_counter()
        for item in inputs:
            await self.environment.run(activities.send, item)
        whole = time.perf_counter() - started
        context = {"journey": {"id": "bench_sms"}, "step": {"id": "offer"}}
        started = time.perf_counter()
        for person in self.people[:sample]:
            render_message(templates, "offer", person, context)
        parts = {**timed_store.seconds, **timed_connector.seconds}
        parts["render"] = time.perf_counter() - started
        return whole, parts, {**timed_store.calls, **timed_connector.calls}


async def main(sends: int, concurrency: int, rounds: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        store = Store.from_url(f"sqlite+aiosqlite:///{directory / 'journey.db'}")
        await store.migrate()
        (directory / "templates").mkdir()
        with (directory / "templates" / "offer.yaml").open("w", encoding="utf-8") as out:
            YAML().dump(TEMPLATE, out)
        bench = Bench(
            store,
            [
                Profile(
                    f"p{i:06d}", {"first_name": "小明", "cart_value": 99, "phone": "+8613800000000"}
                )
                for i in range(sends)
            ],
            concurrency,
        )
        now = datetime.now(UTC)
        for channel in ("sms", "unclaimed", "webhook"):
            await bench.deploy(channel, directory / "templates", now)
        await store.upsert_profiles(bench.people)

        async with httpx.AsyncClient() as http, receiver() as url:
            outbox = directory / "outbox.jsonl"
            registry = ConnectorRegistry(
                ConnectorSettings(
                    console_path=outbox,
                    webhook_url=url,
                    webhook_secret=SecretStr("bench-secret"),
                    channels={"sms": "console", "unclaimed": "unclaimed", "webhook": "webhook"},
                ),
                http,
                {
                    **BUILTIN_FACTORIES,
                    "unclaimed": lambda settings, client: AsIfIdempotent(ConsoleConnector(outbox)),
                },
            )
            console = await bench.rates("sms", registry, rounds)
            claimed, unclaimed = await bench.claim_cost(registry, rounds)
            webhook = await bench.rates("webhook", registry, rounds)
            templates = (await store.get_version("bench_sms", bench.versions["sms"])).templates
            sample = min(sends, 300)
            whole, parts, calls = await bench.breakdown(registry, templates, sample)
            await registry.aclose()
        await store.aclose()

    print(f"sends: {sends} x {rounds} rounds, concurrency {concurrency}")
    print(f"{'':34}{'directly':>12}{'activity':>12}{'ratio':>9}")
    for label, (direct, through) in (
        ("console connector (the aim)", console),
        ("webhook to a local HTTP receiver", webhook),
    ):
        print(f"{label:<34}{direct:10.0f}/s{through:10.0f}/s{through / direct:8.2f}x")
    print("aim: activity/direct >= 0.70x with the console connector")
    print(
        f"console through the activity, at-most-once claim {claimed:.0f}/s against "
        f"{unclaimed:.0f}/s declared idempotent (no claim): {claimed / unclaimed:.2f}x"
    )
    print(
        f"where one console send's time goes (sequential, {sample} sends, "
        f"{whole / sample * 1e3:.2f} ms):"
    )
    for name, seconds in sorted(parts.items(), key=lambda item: -item[1]):
        per_send = f"  {calls[name] / sample:.0f} call(s) a send" if name in calls else ""
        print(f"  {name:<24} {seconds / sample * 1e3:8.3f} ms  {seconds / whole:6.1%}{per_send}")
    print(f"  {'other':<24} {(whole - sum(parts.values())) / sample * 1e3:8.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    asyncio.run(main(options.sends, options.concurrency, options.rounds))
