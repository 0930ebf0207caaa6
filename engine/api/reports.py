"""The HTML report served: ``GET /reports`` (every deployed journey) and
``GET /reports/{journey_id}`` (one), the same page ``journey report --html`` writes.

Readable with an API key (``Authorization: Bearer``) or a signed report link
(``journey report --link``): the link's ``?token=`` is moved into a cookie (``HttpOnly``,
``SameSite=Lax``, path ``/reports``) by a redirect to the bare address, so the token stays out
of the address bar, the history and any Referer. Pages are never cached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from html import escape
from typing import Any, Protocol

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from engine.analytics.html import CONTENT_SECURITY_POLICY, render_html
from engine.analytics.model import Report
from engine.api.report_access import COOKIE, PREFIX
from engine.services.reporting import UnknownJourney

log = structlog.get_logger(__name__)

_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class ReportBuilder(Protocol):
    def __call__(self, journey_ids: Sequence[str] | None = None) -> Awaitable[Report]: ...


def reports_router(build: ReportBuilder, dependencies: Sequence[Any]) -> APIRouter:
    router = APIRouter(dependencies=list(dependencies))

    @router.get(PREFIX, response_class=HTMLResponse, summary="every journey's report (HTML)")
    async def every_journey(request: Request, token: str | None = None) -> Response:
        if token is not None:
            return _keep_in_cookie(request, token)
        return await _page(build, None, "Journey report")

    @router.get(
        PREFIX + "/{journey_id}",
        response_class=HTMLResponse,
        summary="one journey's report (HTML)",
        responses={404: {"description": "the journey is not deployed"}},
    )
    async def one_journey(request: Request, journey_id: str, token: str | None = None) -> Response:
        if token is not None:
            return _keep_in_cookie(request, token)
        return await _page(build, [journey_id], f"Journey report: {journey_id}")

    return router


async def _page(build: ReportBuilder, journey_ids: list[str] | None, title: str) -> Response:
    try:
        report = await build(journey_ids)
    except UnknownJourney as exc:
        return HTMLResponse(
            f"<!doctype html><title>Not found</title><p>{escape(str(exc))}</p>",
            status_code=404,
            headers=_HEADERS,
        )
    except (SQLAlchemyError, OSError) as exc:
        log.warning("report_failed", error=type(exc).__name__)
        return HTMLResponse(
            "<!doctype html><title>Unavailable</title><p>The store did not answer; try again.</p>",
            status_code=503,
            headers={**_HEADERS, "Retry-After": "5"},
        )
    # Drawing a dozen charts takes tens of milliseconds: keep the event loop free meanwhile.
    html = await asyncio.to_thread(render_html, report, title=title)
    log.info("report_served", journeys=len(report.journeys))
    return HTMLResponse(html, headers=_HEADERS)


def _keep_in_cookie(request: Request, token: str) -> Response:
    """Redirect to the same page without the token, which now travels in a cookie."""
    response = RedirectResponse(request.url.path, status_code=303, headers=_HEADERS)
    response.set_cookie(
        COOKIE,
        token,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response
