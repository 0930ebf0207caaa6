"""A server for a bench, in a child process (its own CPU, as in production)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx

Probe = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


@contextlib.asynccontextmanager
async def child_server(command: list[str], probe: Probe, what: str) -> AsyncIterator[None]:
    """Run ``command`` until the block ends (SIGTERM); enter once ``probe`` answers 200."""
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
        yield
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
