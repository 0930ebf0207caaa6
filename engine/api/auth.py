"""Bearer API keys, checked before a request body is read.

An ASGI middleware rather than a FastAPI dependency: FastAPI parses (and reports errors in) the
body before it runs dependencies, so an unauthenticated client could otherwise make the server
parse megabytes of JSON and learn about the schema. Every path is protected except the few that
are public by design (default deny).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Sequence

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

PUBLIC_PATHS = frozenset({"/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
PUBLIC_PREFIXES = ("/u/",)
"""Unsubscribe links: the signed token in the path is the credential."""


MIN_EXPOSED_KEY = 16
"""Characters an API key needs when the API listens beyond loopback ("change-me" is 9)."""


def exposure_problem(keys: Sequence[str], host: str) -> str | None:
    """Why ``keys`` cannot guard an API listening on ``host``, or None when they can.

    No keys never can (`create_app` refuses that too, before any connection is made); short
    keys can only on a loopback interface, where nobody else reaches the port (development).
    """
    if not keys:
        return (
            "no API keys configured: set JOURNEY_API_KEYS to a JSON list of long random keys, "
            'e.g. ["<key>"] with a key from python3 -c \'import secrets; '
            "print(secrets.token_urlsafe(32))'"
        )
    if _loopback(host):
        return None
    for number, key in enumerate(keys, start=1):
        if len(key) < MIN_EXPOSED_KEY:
            return (
                f"API key {number} of JOURNEY_API_KEYS has {len(key)} characters: listening on "
                f"{host}, reachable from other machines, each key needs at least "
                f"{MIN_EXPOSED_KEY} (use long random keys)"
            )
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def matched_key(presented: str, keys: Iterable[bytes]) -> int | None:
    """The position of the key ``presented`` is, or None. Every key is compared in constant
    time (no early exit, so the timing says nothing about which key nearly matched)."""
    # Starlette decodes header bytes as latin-1; encoding back gives the bytes that were sent.
    given = presented.encode("latin-1")
    matched = None
    for position, key in enumerate(keys):
        if hmac.compare_digest(given, key):
            matched = position
    return matched


def key_name(position: int) -> str:
    """How the audit names the key at ``position`` of JOURNEY_API_KEYS (never the key)."""
    return f"api-key-{position + 1}"


API_KEY_NAME = "api_key_name"
"""Where a request's ``scope["state"]`` holds the name of the key it came with."""


class BearerKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: Sequence[str]) -> None:
        self.app = app
        self._keys = tuple(key.encode("utf-8") for key in keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in PUBLIC_PATHS
            or scope["path"].startswith(PUBLIC_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        matched = matched_key(token.strip(), self._keys) if token.strip() else None
        if scheme.lower() != "bearer" or not token.strip():
            detail = "missing API key: send the header Authorization: Bearer <key>"
        elif matched is None:
            detail = "invalid API key"
        else:
            scope.setdefault("state", {})[API_KEY_NAME] = key_name(matched)
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
        await response(scope, receive, send)
