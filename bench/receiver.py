"""A webhook receiver for bench.connectors: accepts every POST with ``{"id": "<n>"}``.

Run in its own process (``python -m uvicorn bench.receiver:app``) so the provider's CPU is not the
sender's.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

_ids = itertools.count(1)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    body = json.dumps({"id": f"r-{next(_ids)}"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
