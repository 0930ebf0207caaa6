"""Run the API with uvicorn inside the caller's event loop.

The embedded stack runs the API, the worker and the servers in one process and one loop, so the
API must neither own the loop (``uvicorn.run``) nor the process's signals: the caller decides
when to stop, by setting an ``asyncio.Event``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import Iterator

import structlog
import uvicorn
from fastapi import FastAPI

log = structlog.get_logger(__name__)

GRACEFUL_SHUTDOWN = 10
"""Seconds in-flight requests get to finish once ``stop`` is set."""
YOUNG_COLLECTION_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation (CPython's default: 700)."""


class ApiServerError(RuntimeError):
    """The API server stopped without being asked to (it could not start, or it crashed)."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Leave SIGINT/SIGTERM to the process's owner; it stops us through `stop`.
        yield


async def serve_api(
    app: FastAPI,
    host: str,
    port: int,
    stop: asyncio.Event,
    listening: asyncio.Event | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set, then shut down gracefully.
    ``listening`` is set once the port takes connections (they wait in its backlog until the
    server accepts them).

    Raises ``OSError`` at once when the address cannot be bound (uvicorn would exit the
    process instead) and ``ApiServerError`` when the server ends before ``stop`` is set.
    Before serving, what the process holds so far is frozen out of garbage collection
    (``gc.freeze``; build the app and its clients first) and the youngest generation is
    collected less often (``YOUNG_COLLECTION_THRESHOLD``): both for the whole process.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # the process has configured logging; uvicorn must not redo it
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    server = _Server(config)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets
    # whose proto says TCP, and accepted connections inherit proto 0 otherwise; with Nagle on,
    # every response waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(config.backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise

    async def run() -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:
            # uvicorn exits the process when start-up fails; a task must not let SystemExit
            # out (asyncio would re-raise it through the loop and stop everything).
            raise ApiServerError(f"the API server failed to start (exit {exc.code})") from exc

    # Everything alive now (modules, the app, clients) lives as long as the process: keep it out
    # of the collector's full passes, which otherwise walk those hundreds of thousands of objects
    # again and again while requests allocate. And collect the youngest objects less often: a
    # batch of 500 events holds tens of thousands until its response is sent (reference counting
    # frees them then), and a pass every 700 allocations walked them several times per batch,
    # about a tenth of its CPU.
    gc.collect()
    gc.freeze()
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_COLLECTION_THRESHOLD), older, oldest)
    with sock:
        serving = asyncio.create_task(run(), name="api-server")
        log.info("api_listening", host=host, port=sock.getsockname()[1])
        if listening is not None:
            listening.set()
        stopping = asyncio.create_task(stop.wait(), name="api-stop")
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            server.should_exit = True
            await serving
        if not stop.is_set():
            raise ApiServerError("the API server stopped before it was asked to")
    log.info("api_stopped", host=host, port=port)
