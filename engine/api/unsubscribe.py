"""The one-click unsubscribe link (RFC 8058): ``POST /u/{token}`` unsubscribes at once,
``GET /u/{token}`` shows a page with one button (mail scanners follow GET links, so GET alone
must not unsubscribe). The signed token is the authentication; no API key is needed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from html import escape

import structlog
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from engine.store import Store
from engine.unsubscribe import BadToken, read_token

log = structlog.get_logger(__name__)

PREFIX = "/u/"

_PAGE = """<!doctype html><html lang="zh"><meta charset="utf-8">
<title>{title}</title><body style="font-family:sans-serif;max-width:32em;margin:3em auto">
<h1>{title}</h1><p>{body}</p>{form}</body></html>"""


def unsubscribe_router(store: Store, secret: str, clock: Callable[[], datetime]) -> APIRouter:
    router = APIRouter()

    @router.get(PREFIX + "{token}", response_class=HTMLResponse, include_in_schema=False)
    async def confirm(token: str) -> HTMLResponse:
        try:
            _, channel = read_token(secret, token)
        except BadToken:
            return _invalid()
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
            profile_id, channel = read_token(secret, token)
        except BadToken:
            return _invalid()
        await store.set_subscription(
            profile_id, channel, "unsubscribed", "unsubscribe_link", clock()
        )
        log.info("unsubscribed", profile_id=profile_id, channel=channel, source="unsubscribe_link")
        body = f"已退订 {escape(channel)}。You will get no more marketing by {escape(channel)}."
        return HTMLResponse(_PAGE.format(title="已退订 Unsubscribed", body=body, form=""))

    return router


def _invalid() -> HTMLResponse:
    page = _PAGE.format(title="链接无效 Invalid link", body="This link is not valid.", form="")
    return HTMLResponse(page, status_code=404)
