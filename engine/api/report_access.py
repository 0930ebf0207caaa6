"""Who may read ``/reports`` and ``/reports/{journey_id}`` without an API key: the holder of a
signed report link (``engine.report_links``), from the link itself (``?token=``) or from the
cookie the first visit leaves, so the address bar and the history keep no token."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import Scope

from engine.report_links import ALL, BadToken, read_report_token

PREFIX = "/reports"
COOKIE = "journey_report"


def report_target(path: str) -> tuple[bool, str | None]:
    """(is a report page, its journey id): ``/reports`` -> (True, None), ``/reports/x`` ->
    (True, "x"), anything else -> (False, None)."""
    if path in (PREFIX, PREFIX + "/"):
        return True, None
    rest = path.removeprefix(PREFIX + "/")
    if rest != path and rest and "/" not in rest:
        return True, rest
    return False, None


def presented_tokens(scope: Scope) -> list[str]:
    """The link's token first, then the cookie's."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = list(query.get("token", []))
    cookies = Headers(scope=scope).get("cookie", "")
    for part in cookies.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            tokens.append(value)
    return tokens


@dataclass(frozen=True)
class ReportAccess:
    secret: str
    clock: Callable[[], datetime]

    def admits(self, scope: Scope) -> bool:
        """Whether a presented token is valid, unexpired and covers the page asked for."""
        is_report, journey_id = report_target(scope["path"])
        if not is_report:
            return False
        now = self.clock()
        for token in presented_tokens(scope):
            try:
                granted = read_report_token(self.secret, token, now)
            except BadToken:
                continue
            if granted in (ALL, journey_id):
                return True
        return False
