"""A redis-server without persistence for the load tests, whose subject is atomicity not
durability (the session's `redis_server` fsyncs every write, as production does)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from engine.servers import find_binary, free_port, port_taken

VOLATILE = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")


@pytest.fixture(scope="session")
def volatile_redis_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [str(find_binary("redis-server")), "--port", str(port), *VOLATILE],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not port_taken(port):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"redis-server did not start on port {port}")
        time.sleep(0.02)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)
