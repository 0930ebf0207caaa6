"""A webhook receiver for the benches: accepts every POST with ``{"id": "<n>"}``.

Run in its own process (``python -m uvicorn bench.receiver:app``) so the provider's CPU is not the
sender's. ``bench.receiver:recording_app`` also keeps each request's ``webhook-id`` (the send
key, the same on a retry) and answers ``GET`` with them, one per line, so a bench can count what
a provider received per person (bench.scale: no send over a cap).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

_ids = itertools.count(1)
_received: list[bytes] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    body = json.dumps({"id": f"r-{next(_ids)}"}).encode()
    await _answer(send, body, b"application/json")


async def recording_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        await _answer(send, b"\n".join(_received), b"text/plain")
        return
    _received.extend(value for name, value in scope["headers"] if name == b"webhook-id")
    await app(scope, receive, send)


async def _answer(send: Any, body: bytes, kind: bytes) -> None:
    headers = [(b"content-type", kind), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
