"""Request bodies are UTF-8 JSON (RFC 8259), and a body that is not says where it went wrong.

FastAPI reads a body with ``json.loads(bytes)``, which guesses UTF-16 and UTF-32 from the first
bytes (a UTF-16 body was accepted) and answers a body that is not valid UTF-8 with a bare 400
"There was an error parsing the body". Routes built with `StrictJsonRoute` read the body as UTF-8
and nothing else: a byte that is not UTF-8 is a 400 naming its offset; JSON that does not parse
raises ``json.JSONDecodeError``, which FastAPI turns into a ``json_invalid`` validation error that
`malformed_json` words as "line L, column C" (`engine.api.app` answers it with 400 too).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute


class BadJson(ValueError):
    """A body that is not UTF-8 JSON; the message says where it went wrong."""


def read_json(body: bytes) -> Any:
    """``body`` as JSON, read as UTF-8 and nothing else. Raises BadJson naming the first byte
    that is not UTF-8, or the line and column where the JSON stops parsing."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJson(
            f"the body is not UTF-8: byte {exc.start} (0x{body[exc.start]:02x}) "
            "cannot start or continue a character; send JSON encoded as UTF-8"
        ) from None
    try:
        return json.loads(text)
    except RecursionError:
        raise BadJson("malformed JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BadJson(malformed_json(text, exc.pos, exc.msg)) from None


class _Utf8JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()  # a body over the size limit raises here: 413 upstream
            try:
                self._json = read_json(body)
            except BadJson as exc:
                raise HTTPException(400, detail=str(exc)) from None
        return self._json


class StrictJsonRoute(APIRoute):
    """An APIRoute whose JSON bodies must be UTF-8 (give it as ``route_class``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handle(_Utf8JsonRequest(request.scope, request.receive))

        return strict


def malformed_json(body: Any, position: Any, reason: Any) -> str:
    """The message for JSON that does not parse: ``reason`` at ``position`` (a character offset
    into ``body``, the decoded text) as line and column."""
    if not isinstance(body, str) or not isinstance(position, int):
        return f"malformed JSON: {reason}"
    line = body.count("\n", 0, position) + 1
    column = position - (body.rfind("\n", 0, position) + 1) + 1
    return f"malformed JSON at line {line}, column {column} (character {position}): {reason}"
