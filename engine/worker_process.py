"""Journey workers as processes of their own (`journey worker --only ...`), for `journey demo`
and `journey dev`.

In one process with a driver (the demo entering people and sending purchase events, the API),
workflow tasks wait behind the driver's work and the activities for the event loop and the GIL
(a local activity that writes the ledger waited up to 10 s), and the SDK warns "[TMPRL1104]
Workflow task duration exceeded 5 seconds". One process for workflow tasks and one for activity
tasks keeps them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from engine.stack import StackError

READY = "worker_started"
"""The line `journey worker` logs once it polls."""


@contextlib.asynccontextmanager
async def worker_process(
    settings: Mapping[str, str | None],
    log_path: Path,
    *,
    role: str = "all",
    within: float = 60,
    module: str = "engine.cli.main",
) -> AsyncIterator[int]:
    """Run ``journey worker`` with ``settings`` (``JOURNEY_*`` variables; ``None`` removes one)
    on top of this process's environment, logging to ``log_path``; wait until it polls; on the
    way out stop it (SIGTERM: it finishes the tasks in hand) and wait. Raises StackError if it
    does not start. ``role``: ``all``, or ``workflows`` / ``activities`` (``journey worker
    --only``). ``module``: run as ``python -m <module> worker [--only ROLE]`` (a benchmark's own
    entry that adds a workflow to `engine.runner.run_worker`). Yields the process id."""
    environment = {**os.environ, "JOURNEY_LOG_FORMAT": "json", **settings}
    with log_path.open("ab") as log_file:
        start = log_file.seek(0, os.SEEK_END)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            "worker",
            *([] if role == "all" else ["--only", role]),
            env={name: value for name, value in environment.items() if value is not None},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + within
        while not _ready(_since(log_path, start), role):
            if child.returncode is not None or time.monotonic() > deadline:
                name = "worker" if role == "all" else f"{role} worker"
                raise StackError(f"the {name} did not start: see {log_path}")
            await asyncio.sleep(0.1)
        yield child.pid
    finally:
        if child.returncode is None:
            child.terminate()
            try:
                await asyncio.wait_for(child.wait(), 30)
            except TimeoutError:
                child.kill()
                await child.wait()


def _ready(lines: str, role: str) -> bool:
    return any(READY in line and f'"role": "{role}"' in line for line in lines.splitlines())


def _since(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode("utf-8", errors="replace")
