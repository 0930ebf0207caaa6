"""Signed, expiring links to the HTML report served by the API, for people with a browser and
no API key (a browser cannot send ``Authorization: Bearer``).

A token (``engine.signing``) signs ``report \\x1f scope \\x1f expiry`` where the scope is one
journey id or ``*`` for every journey; the expiry is in Unix seconds. Whoever holds the link can
read that report until it expires: share it as you would the page itself.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from engine.signing import BadToken, sign, unsign

__all__ = ["ALL", "BadToken", "make_report_token", "read_report_token", "report_url"]

ALL = "*"
"""The scope of a link to every journey's report (``/reports`` and each ``/reports/{id}``)."""
_KIND = "report"
_SEP = "\x1f"


def make_report_token(secret: str, scope: str, expires: datetime) -> str:
    return sign(secret, _SEP.join((_KIND, scope, str(int(expires.timestamp())))).encode())


def read_report_token(secret: str, token: str, now: datetime) -> str:
    """The scope (a journey id or ``ALL``) of an unexpired token made with ``secret``;
    BadToken otherwise."""
    payload = unsign(secret, token)
    try:
        kind, scope, expires = payload.decode().split(_SEP)
        expiry = int(expires)
    except ValueError as exc:  # UnicodeDecodeError is one
        raise BadToken(str(exc)) from None
    if kind != _KIND:
        raise BadToken("not a report token")
    if now.timestamp() >= expiry:
        raise BadToken("the link has expired")
    return scope


def report_url(base_url: str, secret: str, journey_id: str | None, expires: datetime) -> str:
    """A link to every journey's report (``journey_id`` None) or to one journey's."""
    scope = ALL if journey_id is None else journey_id
    path = "/reports" if journey_id is None else f"/reports/{quote(journey_id, safe='')}"
    return f"{base_url.rstrip('/')}{path}?token={make_report_token(secret, scope, expires)}"
