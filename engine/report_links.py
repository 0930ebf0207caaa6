"""Signed, expiring links to the HTML report served by the API, for people with a browser and
no API key (a browser cannot send ``Authorization: Bearer``).

A token is an ``itsdangerous`` signature, salted for this one purpose (an unsubscribe token
never reads as a report link, nor the other way round), of ``[scope, expiry]``: the scope is one
journey id or ``*`` for every journey, the expiry Unix seconds chosen when the link is made
(``journey report --link --valid-for 7d``). Whoever holds the link can read that report until
it expires: share it as you would the page itself.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from itsdangerous import BadData, URLSafeSerializer

__all__ = ["ALL", "BadToken", "make_report_token", "read_report_token", "report_url"]

ALL = "*"
"""The scope of a link to every journey's report (``/reports`` and each ``/reports/{id}``)."""
SALT = "journey-engine.report"


class BadToken(ValueError):
    """Not a report link made with this secret, malformed, or expired."""


def make_report_token(secret: str, scope: str, expires: datetime) -> str:
    return URLSafeSerializer(secret, salt=SALT).dumps([scope, int(expires.timestamp())])


def read_report_token(secret: str, token: str, now: datetime) -> str:
    """The scope (a journey id or ``ALL``) of an unexpired token made with ``secret``;
    BadToken otherwise."""
    try:
        payload = URLSafeSerializer(secret, salt=SALT).loads(token)
    except BadData as exc:
        raise BadToken("the signature does not match") from exc
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not isinstance(payload[0], str)
        or not isinstance(payload[1], int)
    ):
        raise BadToken("not a report link")
    scope: str = payload[0]
    if now.timestamp() >= payload[1]:
        raise BadToken("the link has expired")
    return scope


def report_url(base_url: str, secret: str, journey_id: str | None, expires: datetime) -> str:
    """A link to every journey's report (``journey_id`` None) or to one journey's."""
    scope = ALL if journey_id is None else journey_id
    path = "/reports" if journey_id is None else f"/reports/{quote(journey_id, safe='')}"
    return f"{base_url.rstrip('/')}{path}?token={make_report_token(secret, scope, expires)}"
