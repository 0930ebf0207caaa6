"""A provider stand-in: a tiny ASGI app that records requests and answers by path."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from standardwebhooks import Webhook, WebhookVerificationError

from connectors.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

PROVIDER_SECRET = "provider-test-secret"


def standard_valid(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    """Whether the Standard Webhooks library, as a receiver uses it, accepts the request."""
    receiver = Webhook(secret if secret.startswith("whsec_") else secret.encode())
    try:
        receiver.verify(body, headers, json_parse=False)
    except WebhookVerificationError:
        return False
    return True


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    signature_valid: bool
    """Both signatures verify: the Standard Webhooks one (with the ``standardwebhooks``
    library) and the engine's earlier ``X-Journey-Signature``."""

    def json(self) -> Any:
        return json.loads(self.body)


async def read_body(receive: Any) -> bytes:
    """The whole body of an ASGI HTTP request."""
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body", False):
            return body


class ProviderStub:
    """ASGI app; what it answers is chosen by the request path:

    - ``/ok``: 200 ``{"id": "prov-<n>"}``; ``/no-id``: 204 with no body
    - ``/status/<code>?retry_after=..&error_code=..``: that status, header and JSON error code
    - ``/slow?seconds=..``: sleeps, then 200
    Every request is recorded with whether its signature verifies with ``PROVIDER_SECRET``;
    an invalid signature is answered 401 (as a real receiver would).
    """

    def __init__(self, secret: str = PROVIDER_SECRET) -> None:
        self.requests: list[ReceivedRequest] = []
        self.secret = secret

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = await read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        valid = standard_valid(self.secret, body, headers) and verify_signature(
            self.secret,
            headers.get(TIMESTAMP_HEADER.lower()),
            body,
            headers.get(SIGNATURE_HEADER.lower()),
        )
        path: str = scope["path"]
        self.requests.append(ReceivedRequest(scope["method"], path, headers, body, valid))
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}

        status = 200
        extra_headers: list[tuple[bytes, bytes]] = []
        payload: dict[str, Any] | None = {"id": f"prov-{len(self.requests)}"}
        if not valid:
            status, payload = 401, {"error": {"code": "bad_signature"}}
        elif path == "/no-id":
            status, payload = 204, None
        elif path == "/slow":
            await asyncio.sleep(float(query.get("seconds", "1")))
        elif path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            payload = {"error": {"code": query["error_code"]}} if "error_code" in query else None
            if "retry_after" in query:
                extra_headers.append((b"retry-after", query["retry_after"].encode()))
        raw = b"" if payload is None else json.dumps(payload).encode()
        content_type = [(b"content-type", b"application/json")] if raw else []
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": content_type + extra_headers,
            }
        )
        await send({"type": "http.response.body", "body": raw})


@dataclass(frozen=True)
class Provider:
    base_url: str
    stub: ProviderStub
    secret: str = PROVIDER_SECRET

    @property
    def requests(self) -> list[ReceivedRequest]:
        return self.stub.requests
