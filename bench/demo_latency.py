"""Workflow-task latency during the demo, from the Temporal SDK's own metrics.

Runs ``journey demo`` (the same code) in this process with a Temporal runtime that serves its
Prometheus telemetry, then scrapes ``temporal_workflow_task_execution_latency`` and
``temporal_workflow_task_schedule_to_start_latency`` and prints their p50/p99 (upper bucket
bounds, summed over every label set), plus the number of ``[TMPRL1104] Workflow task duration
exceeded`` warnings the core logged.

    python -m bench.demo_latency [--profiles 2000] [--in-process [--max-concurrent-activities N]]

By default the demo's worker runs in a process of its own (as `journey demo` runs it); that
process is given a runtime serving the metrics (a ``sitecustomize`` on its PYTHONPATH) and is
scraped every second while it lives; its log is searched for TMPRL1104. ``--in-process`` runs the
worker next to the demo's driver, as the demo did before.

It picks free ports and a throw-away home, so it runs next to a `journey dev`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path

import structlog
from temporalio.runtime import Runtime

from bench.sdk_metrics import (
    METRICS,
    SLOW_WORKFLOW_TASK,
    bound,
    histograms,
    scrape_until,
    unit,
)
from engine.demo.run import DemoOptions, run_demo
from engine.servers import free_port
from engine.stack import StackPorts
from engine.telemetry import temporal_runtime

REPO = Path(__file__).resolve().parent.parent


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.slow = 0
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if SLOW_WORKFLOW_TASK in message:
            self.slow += 1
        elif len(self.warnings) < 20:
            self.warnings.append(message[:200])


_WORKER_TELEMETRY = """\
import os, pathlib
from temporalio.runtime import Runtime
from engine.telemetry import temporal_runtime
command = pathlib.Path("/proc/self/cmdline").read_bytes().split(b"\\0")
if b"workflows" in command or (b"worker" in command and b"--only" not in command):
  Runtime.set_default(temporal_runtime(os.environ["BENCH_WORKER_METRICS"]))
"""
"""A ``sitecustomize`` for the process that runs the workflows (``journey worker --only
workflows``, or a plain ``journey worker``): its runtime serves Prometheus metrics (the worker's
logging setup keeps a runtime already set)."""


def instrument_worker_process(directory: Path) -> str:
    """Make processes started from now on serve the SDK's metrics; returns where."""
    (directory / "sitecustomize.py").write_text(_WORKER_TELEMETRY, encoding="utf-8")
    address = f"127.0.0.1:{free_port()}"
    os.environ["BENCH_WORKER_METRICS"] = address
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(directory), os.environ.get("PYTHONPATH", "")) if p
    )
    return address


async def measure(profiles: int, activities: int, in_process: bool) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    metrics_port = free_port()
    counter = _Counter()
    core = logging.getLogger("temporalio.core")
    core.addHandler(counter)
    core.propagate = False
    # The engine's runtime (its finer latency buckets), its core log lines forwarded to ``core``.
    Runtime.set_default(temporal_runtime(f"127.0.0.1:{metrics_port}"), error_if_already_set=True)
    with tempfile.TemporaryDirectory() as home:
        options = DemoOptions(
            home=Path(home),
            journeys_dir=REPO / "journeys",
            profiles=profiles,
            max_concurrent_activities=activities,
            worker_process=not in_process,
            ports=StackPorts(free_port(), free_port(), free_port()),
        )
        started = time.monotonic()
        done = asyncio.Event()
        scraped: list[str] = []
        address = f"127.0.0.1:{metrics_port}"
        if not in_process:
            address = instrument_worker_process(Path(home))
        scraper = asyncio.create_task(scrape_until(f"http://{address}/metrics", done, scraped))
        try:
            await run_demo(options, lambda line: None)
        finally:
            done.set()
            await scraper
        took = time.monotonic() - started
        text = scraped[0] if scraped else ""
        if options.log_path.exists():
            counter.slow += options.log_path.read_text(encoding="utf-8").count(SLOW_WORKFLOW_TASK)
    print(f"demo of {profiles} profiles took {took:.0f}s")
    found = histograms(text)
    for metric in METRICS:
        for name, buckets in found.items():
            if name.startswith(metric):
                u = unit(name)
                print("  buckets:", ", ".join(f"{b:g}:{c:.0f}" for b, c in buckets))
                print(
                    f"{name}: n={buckets[-1][1]:.0f} p50 {bound(buckets, 0.5, u)} "
                    f"p99 {bound(buckets, 0.99, u)} max {bound(buckets, 1.0, u)}"
                )
    print(f"TMPRL1104 warnings: {counter.slow}")
    for line in counter.warnings:
        print(f"  other core warning: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--max-concurrent-activities", type=int, default=100)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="the worker in the demo's process, next to its driver (as before)",
    )
    args = parser.parse_args()
    asyncio.run(measure(args.profiles, args.max_concurrent_activities, args.in_process))


if __name__ == "__main__":
    main()
