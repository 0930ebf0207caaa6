"""Bearer API keys, checked before a request body is read.

An ASGI middleware rather than a FastAPI dependency: FastAPI parses (and reports errors in) the
body before it runs dependencies, so an unauthenticated client could otherwise make the server
parse megabytes of JSON and learn about the schema. Every path is protected except the few that
are public by design (default deny).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.api.report_access import ReportAccess, report_target

PUBLIC_PATHS = frozenset({"/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
PUBLIC_PREFIXES = ("/u/",)
"""Unsubscribe links: the signed token in the path is the credential."""


def key_matches(presented: str, keys: Iterable[bytes]) -> bool:
    """Compare ``presented`` with every key in constant time per key (no early exit, so the
    timing says nothing about which key nearly matched)."""
    # Starlette decodes header bytes as latin-1; encoding back gives the bytes that were sent.
    given = presented.encode("latin-1")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key)
    return matched


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
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            detail = "missing API key: send the header Authorization: Bearer <key>"
        elif not key_matches(token.strip(), self._keys):
            detail = "invalid API key"
        else:
            await self.app(scope, receive, send)
            return
        response: Response = JSONResponse(
            {"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
        if self._reports is not None and not scheme and report_target(scope["path"])[0]:
            response = HTMLResponse(
                _LINK_REFUSED, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        await response(scope, receive, send)
