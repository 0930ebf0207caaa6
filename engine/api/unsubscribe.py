"""The one-click unsubscribe link (RFC 8058): ``POST /u/{token}`` unsubscribes at once,
``GET /u/{token}`` shows a page with one button (mail scanners follow GET links, so GET alone
must not unsubscribe). The signed token is the authentication; no API key is needed. A forged
link gets a 404 page and an expired one a 410 page saying what to do, never an error."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from html import escape

import structlog
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from engine.store import Store
from engine.unsubscribe import MAX_AGE, BadToken, Secrets, TokenExpired, read_token

log = structlog.get_logger(__name__)

PREFIX = "/u/"

_PAGE = """<!doctype html><html lang="zh"><meta charset="utf-8">
<title>{title}</title><body style="font-family:sans-serif;max-width:32em;margin:3em auto">
<h1>{title}</h1><p>{body}</p>{form}</body></html>"""


def unsubscribe_router(
    store: Store,
    secret: Secrets,
    clock: Callable[[], datetime],
    max_age: timedelta = MAX_AGE,
) -> APIRouter:
    """``secret``: one secret or several (the first signs, all verify); links older than
    ``max_age`` are refused as expired."""
    router = APIRouter()

    @router.get(PREFIX + "{token}", response_class=HTMLResponse, include_in_schema=False)
    async def confirm(token: str) -> HTMLResponse:
        try:
            _, channel = read_token(secret, token, max_age=max_age, now=clock())
        except BadToken as exc:
            return _invalid(exc)
        form = (
            f'<form method="post" action="{PREFIX}{escape(token)}">'
            '<button type="submit">退订 / Unsubscribe</button></form>'
        )
        name = escape(channel)
        body = f"不再通过 {name} 接收营销消息？ Stop marketing messages by {name}?"
        return HTMLResponse(_PAGE.format(title="退订 Unsubscribe", body=body, form=form))

    @router.post(PREFIX + "{token}", response_class=HTMLResponse, include_in_schema=False)
    async def unsubscribe(token: str) -> HTMLResponse:
        try:
            profile_id, channel = read_token(secret, token, max_age=max_age, now=clock())
        except BadToken as exc:
            return _invalid(exc)
        await store.set_subscription(
            profile_id, channel, "unsubscribed", "unsubscribe_link", clock()
        )
        log.info("unsubscribed", profile_id=profile_id, channel=channel, source="unsubscribe_link")
        body = f"已退订 {escape(channel)}。You will get no more marketing by {escape(channel)}."
        return HTMLResponse(_PAGE.format(title="已退订 Unsubscribed", body=body, form=""))

    return router


def _invalid(exc: BadToken) -> HTMLResponse:
    if isinstance(exc, TokenExpired):
        log.info("unsubscribe_link_expired")
        body = (
            "这个退订链接已过期，请使用最近一封消息中的链接，或直接回复我们。"
            " This unsubscribe link has expired: use the link in a more recent message, or "
            "reply to it and ask us to stop."
        )
        page = _PAGE.format(title="链接已过期 Link expired", body=body, form="")
        return HTMLResponse(page, status_code=410)
    log.info("unsubscribe_link_invalid")
    page = _PAGE.format(title="链接无效 Invalid link", body="This link is not valid.", form="")
    return HTMLResponse(page, status_code=404)
