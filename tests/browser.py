"""A real headless Chromium, driven over the DevTools protocol (a websocket), for page tests.

``Chromium`` starts the browser on a free debugging port with a throw-away profile; ``visit``
opens a URL in a fresh tab and returns what a person at the screen would have seen and what the
DevTools console showed: console errors (``console.error``, uncaught exceptions, CSP violations
and failed loads, which Chromium reports as log entries), every request the page made, the
result of a script run in the page, and a full-page PNG screenshot.

When no Chromium is on the PATH, one is installed with apt-get (Debian's ``chromium``) when
running as root; otherwise the test fails and says how to install it (``JOURNEY_TEST_CHROMIUM``
may name a binary).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import websockets

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ARTIFACTS = Path(
    os.environ.get("JOURNEY_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / ".artifacts")
)
"""Where page tests leave their screenshots (JOURNEY_TEST_ARTIFACTS, default ``.artifacts/``)."""


@cache
def chromium_binary() -> str:
    """A Chromium executable: JOURNEY_TEST_CHROMIUM, one on the PATH, or one apt-get installs."""
    if named := os.environ.get("JOURNEY_TEST_CHROMIUM"):
        if not (found := shutil.which(named)):
            pytest.fail(f"JOURNEY_TEST_CHROMIUM={named!r} is not an executable", pytrace=False)
        return found
    if found := _on_path():
        return found
    attempts: list[str] = []
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "install", "-y", "-qq", "chromium"],
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "chromium"],
        ):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
            attempts.append(f"{' '.join(command)} -> {done.returncode} {done.stderr[-300:]}")
            if command[1] == "install" and done.returncode == 0 and (found := _on_path()):
                return found
    pytest.fail(
        "Chromium is needed to test the HTML report and was not found (looked for "
        f"{', '.join(NAMES)} on the PATH and JOURNEY_TEST_CHROMIUM) nor installed: "
        + ("; ".join(attempts) or "not root or no apt-get")
        + ". Install it: apt-get install -y chromium",
        pytrace=False,
    )


def _on_path() -> str | None:
    return next((path for name in NAMES if (path := shutil.which(name))), None)


@dataclass
class Visit:
    url: str
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    result: Any = None
    """What the script passed to ``visit`` returned (JSON values)."""
    screenshot: bytes = b""


class Chromium:
    def __init__(self, process: asyncio.subprocess.Process, socket: Any) -> None:
        self._process = process
        self._socket = socket
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self._socket:
            message = json.loads(raw)
            if "id" in message:
                future = self._waiting.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
            elif session := message.get("sessionId"):
                await self._events.setdefault(session, asyncio.Queue()).put(message)

    async def _call(self, method: str, session: str | None = None, **params: Any) -> Any:
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self._socket.send(json.dumps(message))
        answer = await asyncio.wait_for(future, 60)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def visit(self, url: str, script: str, width: int = 1400) -> Visit:
        """Open ``url`` in a new tab, wait for its load event, run ``script`` (an expression;
        its JSON value is ``Visit.result``) and take a full-page screenshot."""
        target = (await self._call("Target.createTarget", url="about:blank"))["targetId"]
        session = (await self._call("Target.attachToTarget", targetId=target, flatten=True))[
            "sessionId"
        ]
        events = self._events.setdefault(session, asyncio.Queue())
        for domain in ("Page", "Runtime", "Log", "Network"):
            await self._call(f"{domain}.enable", session)
        await self._call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        visit = Visit(url)
        await self._call("Page.navigate", session, url=url)
        loaded = False
        while not loaded:
            event = await asyncio.wait_for(events.get(), 60)
            loaded = event["method"] == "Page.loadEventFired"
            _note(visit, event)
        # Console messages of the load itself arrive right after the load event.
        await asyncio.sleep(0.3)
        evaluated = await self._call(
            "Runtime.evaluate", session, expression=script, returnByValue=True
        )
        if "exceptionDetails" in evaluated:
            raise RuntimeError(f"the test script failed: {evaluated['exceptionDetails']}")
        visit.result = evaluated["result"].get("value")
        metrics = await self._call("Page.getLayoutMetrics", session)
        height = int(metrics["cssContentSize"]["height"]) + 1
        await self._call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = await self._call("Page.captureScreenshot", session, format="png")
        visit.screenshot = base64.b64decode(shot["data"])
        while not events.empty():
            _note(visit, events.get_nowait())
        await self._call("Target.closeTarget", targetId=target)
        return visit

    async def close(self) -> None:
        """Ask the browser to quit, then end its process group (renderers, GPU, ...) if not."""
        with contextlib.suppress(RuntimeError, TimeoutError, websockets.ConnectionClosed):
            await asyncio.wait_for(self._call("Browser.close"), 5)
        self._reader.cancel()
        await self._socket.close()
        try:
            await asyncio.wait_for(self._process.wait(), 10)
        except TimeoutError:
            os.killpg(self._process.pid, signal.SIGKILL)
            await self._process.wait()


def _note(visit: Visit, event: dict[str, Any]) -> None:
    method, params = event["method"], event.get("params", {})
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"])
        visit.console_errors.append(f"console.{params['type']}: {text}")
    elif method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        text = details.get("exception", {}).get("description") or details.get("text")
        visit.console_errors.append(f"uncaught: {text}")
    elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
        visit.console_errors.append(f"{params['entry']['source']}: {params['entry']['text']}")
    elif method == "Network.requestWillBeSent":
        visit.requests.append(params["request"]["url"])


@asynccontextmanager
async def chromium() -> AsyncIterator[Chromium]:
    """A headless Chromium of the test's own (fresh profile, free debugging port)."""
    binary = chromium_binary()
    with tempfile.TemporaryDirectory(
        prefix="journey-chromium-", ignore_cleanup_errors=True
    ) as profile:
        process = await asyncio.create_subprocess_exec(
            binary,
            "--headless=new",
            "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group, ended as a whole in close()
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            for _ in range(600):
                if port_file.exists() and len(port_file.read_text().splitlines()) >= 2:
                    break
                if process.returncode is not None:
                    raise RuntimeError(f"{binary} exited with {process.returncode}")
                await asyncio.sleep(0.05)
            else:
                raise TimeoutError(f"{binary} did not open its debugging port within 30 s")
            port, path = port_file.read_text().splitlines()[:2]
            socket = await websockets.connect(
                f"ws://127.0.0.1:{port}{path}", max_size=256 * 1024 * 1024
            )
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise
        browser = Chromium(process, socket)
        try:
            yield browser
        finally:
            await browser.close()


CHART_MARKS = """(() => [...document.querySelectorAll('figure.chart')].map(figure => {
  const svg = figure.querySelector(':scope > svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const marks = svg ? [...svg.querySelectorAll('g.bar > rect.rect, g.dots > circle.dot')] : [];
  const drawn = marks.filter(mark => {
    const b = mark.getBBox();
    return b.width > 0 && b.height > 0;
  });
  return {chart: figure.dataset.chart, width: box.width, height: box.height,
          marks: marks.length, drawn: drawn.length};
}))()"""
"""For each chart of the page: its size on screen, its bars and points, and how many of those
have an area (a bar of 0 has none)."""


def save_artifact(name: str, data: bytes) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(data)
    return path
