"""A server for a bench, in a child process (its own CPU, as in production)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx

Probe = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


@contextlib.asynccontextmanager
async def child_server(command: list[str], probe: Probe, what: str) -> AsyncIterator[int]:
    """Run ``command`` until the block ends (SIGTERM); enter, with its process id, once
    ``probe`` answers 200."""
    process = await asyncio.create_subprocess_exec(*command)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(400):
                if process.returncode is not None:
                    raise RuntimeError(f"the {what} exited during start-up")
                with contextlib.suppress(httpx.TransportError):
                    if (await probe(client)).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                raise TimeoutError(f"the {what} did not start")
        yield process.pid
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) process ``pid`` has used so far; None where ``/proc`` does not
    say (not Linux). On a machine shared with other work, a server's CPU per request moves far
    less than its throughput does."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
