"""API keys, checked before a request body is read: ``Authorization: Bearer <key>``, or HTTP
Basic with the key as the user name and an empty password (how Segment's SDKs send a write key).

An ASGI middleware rather than a FastAPI dependency: FastAPI parses (and reports errors in) the
body before it runs dependencies, so an unauthenticated client could otherwise make the server
parse megabytes of JSON and learn about the schema. Every path is protected except the few that
are public by design (default deny). The Segment routes may instead carry the key in the body
(``writeKey``): a request to one of ``BODY_KEY_PATHS`` without an ``Authorization`` header goes
on unauthenticated (``authenticated`` says so) and the route checks the body's key, reading at
most the Segment size limit.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Iterable, Sequence

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.api.report_access import ReportAccess, report_target

PUBLIC_PATHS = frozenset({"/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
PUBLIC_PREFIXES = ("/u/",)
"""Unsubscribe links: the signed token in the path is the credential."""
BODY_KEY_PATHS = frozenset(
    {"/v1/batch", "/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/alias", "/v1/group"}
)
"""Segment routes, which also accept the key as ``writeKey`` in the body."""
_AUTHENTICATED = "journey_api_key_checked"


def authenticated(scope: Scope) -> bool:
    """Whether the middleware checked an API key for this request."""
    return bool(scope.get(_AUTHENTICATED))


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


_LINK_REFUSED = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Report link</title>
<body style="font-family:sans-serif;max-width:36em;margin:3em auto"><h1>This link does not open
the report</h1><p>It has expired, is for another journey, or is not a report link. Ask for a new
one (<code>journey report --link</code>), or send an API key as
<code>Authorization: Bearer</code>.</p></body></html>"""


class BearerKeyMiddleware:
    def __init__(
        self, app: ASGIApp, keys: Sequence[str], reports: ReportAccess | None = None
    ) -> None:
        self.app = app
        self._keys = tuple(key.encode("utf-8") for key in keys)
        self._reports = reports

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in PUBLIC_PATHS
            or scope["path"].startswith(PUBLIC_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        if self._reports is not None and self._reports.admits(scope):
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization")
        if header is None and scope["path"] in BODY_KEY_PATHS:
            await self.app(scope, receive, send)  # the route checks the body's writeKey
            return
        scheme, _, token = (header or "").partition(" ")
        key = _presented_key(scheme.lower(), token.strip())
        if key is None:
            detail = (
                "missing API key: send the header Authorization: Bearer <key> "
                "(or Basic auth with the key as user name)"
            )
        elif (matched := matched_key(key, self._keys)) is None:
            detail = "invalid API key"
        else:
            scope[_AUTHENTICATED] = True
            scope.setdefault("state", {})[API_KEY_NAME] = key_name(matched)
            await self.app(scope, receive, send)
            return
        response: Response = JSONResponse(
            {"detail": detail, "code": "unauthorized", "message": detail},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        if self._reports is not None and not scheme and report_target(scope["path"])[0]:
            response = HTMLResponse(
                _LINK_REFUSED, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        await response(scope, receive, send)


def _presented_key(scheme: str, token: str) -> str | None:
    """The key in a Bearer or Basic credential (Basic: the user name; the password is not
    used), as latin-1 text like Starlette's headers; None when there is none."""
    if not token:
        return None
    if scheme == "bearer":
        return token
    if scheme != "basic":
        return None
    try:
        user, _, _password = base64.b64decode(token, validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return None
    return user.decode("latin-1") or None
