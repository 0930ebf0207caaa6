"""The embedded stack: a Temporal dev server (SQLite persistence) and a Redis server, as children.

Used by ``journey dev`` and ``journey demo``. Starting waits for health; stopping terminates the
children and waits for them. A taken port or a missing binary raises `StackError` with one line
that names it and the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import redis.asyncio as aioredis
import structlog
from temporalio.client import Client

from engine.servers import MissingBinary, find_binary, port_taken
from engine.settings import SEARCH_ATTRIBUTES
from engine.temporal import TemporalUnavailable, connect

log = structlog.get_logger(__name__)


class StackError(RuntimeError):
    """The stack cannot start; the message is one line naming the cause and the fix."""


@dataclass(frozen=True)
class StackPorts:
    temporal: int = 7233
    ui: int = 8233
    redis: int = 6380
    """Not 6379, so the embedded Redis never collides with a system one."""
    metrics: int | None = None
    """The Temporal server's Prometheus ``/metrics`` (``bench.capacity`` reads it); None: not
    served."""


class EmbeddedStack:
    def __init__(self, home: Path, ports: StackPorts = StackPorts()) -> None:
        self.home = home
        self.ports = ports
        self._children: list[tuple[str, asyncio.subprocess.Process, IO[bytes]]] = []

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.ports.temporal}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ports.ui}"

    async def start(self) -> Client:
        """Start both servers, wait until they answer, return a connected Temporal client."""
        for name, port, flag in (
            ("Temporal", self.ports.temporal, "--temporal-port"),
            ("Temporal UI", self.ports.ui, "--ui-port"),
            ("Redis", self.ports.redis, "--redis-port"),
        ):
            if port_taken(port):
                raise StackError(
                    f"port {port} for {name} is taken: stop what uses it (is another "
                    f"`journey dev` running?) or choose another with {flag}"
                )
        try:
            temporal = find_binary("temporal")
            redis_server = find_binary("redis-server")
        except MissingBinary as exc:
            raise StackError(str(exc)) from exc
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        attributes = [
            arg for name in SEARCH_ATTRIBUTES for arg in ("--search-attribute", f"{name}=Keyword")
        ]
        await self._spawn(
            "temporal",
            str(temporal),
            "server",
            "start-dev",
            "--db-filename",
            str(self.home / "temporal.db"),
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.ports.temporal),
            "--ui-port",
            str(self.ports.ui),
            "--log-level",
            "warn",
            # WAL with synchronous=NORMAL survives a crash of the process (not of the machine)
            # and lifts the disk-bound dev server's throughput considerably.
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            *attributes,
            *(() if self.ports.metrics is None else ("--metrics-port", str(self.ports.metrics))),
        )
        await self._spawn(
            "redis",
            str(redis_server),
            "--port",
            str(self.ports.redis),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.home),
        )
        try:
            await self._wait_redis()
            return await self._wait_temporal()
        except BaseException:
            await self.stop()
            raise

    async def _spawn(self, name: str, *argv: str) -> None:
        out = (self.home / "logs" / f"{name}.log").open("ab")
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL
        )
        self._children.append((name, process, out))

    def _check_alive(self) -> None:
        for name, process, _ in self._children:
            if process.returncode is not None:
                raise StackError(
                    f"{name} exited with code {process.returncode}: see "
                    f"{self.home / 'logs' / (name + '.log')}"
                )

    async def _wait_redis(self, within: float = 15) -> None:
        client = aioredis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + within
        try:
            while True:
                self._check_alive()
                try:
                    await client.ping()
                    return
                except (aioredis.ConnectionError, OSError):
                    if time.monotonic() > deadline:
                        raise StackError(f"Redis did not answer on {self.redis_url}") from None
                    await asyncio.sleep(0.1)
        finally:
            await client.aclose()

    async def _wait_temporal(self, within: float = 60) -> Client:
        deadline = time.monotonic() + within
        while True:
            self._check_alive()
            try:
                client = await connect(self.temporal_address)
                return client
            except TemporalUnavailable:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"Temporal did not answer on {self.temporal_address}: see "
                        f"{self.home / 'logs' / 'temporal.log'}"
                    ) from None
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        for _, process, _ in reversed(self._children):
            if process.returncode is None:
                process.terminate()
        for _, process, out in reversed(self._children):
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()
            with contextlib.suppress(OSError):
                out.close()
        self._children.clear()
