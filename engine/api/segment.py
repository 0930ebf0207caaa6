"""The Segment HTTP tracking API, beside the engine's own, so a brand's Segment or RudderStack
SDKs send to the engine with only the host and the write key changed.

Routes: ``POST /v1/batch``, ``/v1/track``, ``/v1/identify``, ``/v1/page``, ``/v1/screen``,
``/v1/alias``, ``/v1/group``. ``/v1/identify`` also serves the engine's own identify body
(``identities`` / ``profile_id``...): a body with ``userId``, ``anonymousId``, ``type``,
``traits`` or ``writeKey`` is Segment's, any other is the engine's (``engine.api.people``).

Authentication: the write key is one of the engine's API keys, sent as the HTTP Basic user name
(empty password), as a bearer token, or as ``writeKey`` in the body.

What each message does is in ``engine.api.segment_models``. A request is validated whole before
anything is written: one bad message refuses the batch (400, naming each bad message's index,
field and reason). Events are stored once per ``messageId`` (a retried batch stores nothing
twice) and wake and enter journeys as ``POST /v1/events`` does; identify, alias and group are
applied in the order sent, each in its own transaction, and applying one again changes nothing.
Responses: ``200 {"success": true}``; ``400`` with ``code`` and ``message`` (what Segment's SDKs
read; they do not retry a 4xx) for a body too large (32 KB a call, 500 KB a batch, after gzip),
not JSON, or invalid; ``401`` without a valid key; ``503`` when the store or Temporal failed
(the SDKs retry it, and retrying is safe).
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Callable, MutableMapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.params import Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from temporalio.service import RPCError

from engine.api.auth import authenticated, matched_key
from engine.api.json_body import BadJson, read_json
from engine.api.models import MAX_BODY_BYTES, IdentifyIn, IdentifyOut
from engine.api.people import identify_person
from engine.api.segment_models import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    SegmentBatch,
    SegmentMessage,
)
from engine.domain import Event
from engine.identity import DEFAULT_REGION
from engine.services.events import DeliveryIncomplete, EventRouter
from engine.store import Store

log = structlog.get_logger(__name__)

SINGLE_CALLS = ("track", "page", "screen", "alias", "group")
_SEGMENT_KEYS = frozenset({"userId", "anonymousId", "type", "traits", "writeKey"})
_SUCCESS = {"success": True}


class SegmentRequestError(Exception):
    """A request refused before anything was written; becomes a 4xx with ``code``/``message``."""

    def __init__(
        self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def response(self) -> JSONResponse:
        # code/message/errors as Segment's API answers (its SDKs read them); detail as the
        # engine's own routes answer, so one client reads both.
        body: dict[str, Any] = {"code": self.code, "message": self.message, "detail": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        headers = {"WWW-Authenticate": "Basic"} if self.status == 401 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


def segment_router(
    store: Store,
    router: EventRouter,
    clock: Callable[[], datetime],
    keys: Sequence[str],
    dependencies: Sequence[Depends],
    errors: dict[int | str, dict[str, Any]],
    region: str = DEFAULT_REGION,
) -> APIRouter:
    """The Segment routes; with ``keys`` empty (an anonymous development API) no key is asked.
    ``errors``: the statuses every route documents. ``region``: where phone numbers without a
    country code are read."""
    api = APIRouter(dependencies=list(dependencies), responses=errors)
    context = {"region": region}
    encoded_keys = tuple(key.encode("utf-8") for key in keys)

    async def apply(messages: Sequence[SegmentMessage], sent_at: datetime | None) -> Response:
        received = clock()
        events: list[Event] = []
        counts = {"events": 0, "accepted": 0, "people": 0}
        try:
            for message in messages:
                if message.type in ("track", "page", "screen"):
                    events.append(_event(message, received, sent_at))
                    continue
                # People change in order with the events around them: an event after an
                # identify is stored for the person the identify made.
                await _flush(router, events, received, counts)
                await store.identify(
                    message.identities(region),
                    profile_id=message.profile_id,
                    attributes=message.attributes(region),
                    merge_ids=message.merged_ids(),
                    at=received,
                )
                counts["people"] += 1
            await _flush(router, events, received, counts)
        except DeliveryIncomplete as exc:
            log.warning("segment_delivery_incomplete", error=type(exc.cause).__name__)
            return _unavailable(
                f"the events are stored, but waking their journeys failed "
                f"({type(exc.cause).__name__}); send the batch again"
            )
        except (SQLAlchemyError, RPCError, OSError) as exc:
            log.warning("segment_ingest_failed", error=type(exc).__name__, **counts)
            return _unavailable(
                f"the store or Temporal failed ({type(exc).__name__}); send the batch again: "
                "what was stored is not stored twice"
            )
        log.info("segment_ingested", messages=len(messages), **counts)
        return JSONResponse(_SUCCESS)

    def check_key(scope: MutableMapping[str, Any], payload: Any) -> None:
        """Unless the middleware checked a header, the body's ``writeKey`` must be a key."""
        if not encoded_keys or authenticated(scope):
            return
        key = payload.get("writeKey") if isinstance(payload, dict) else None
        if not isinstance(key, str) or not key:
            raise SegmentRequestError(
                401,
                "unauthorized",
                "missing write key: send it as the Basic auth user name or as writeKey",
            )
        # matched_key takes header text (latin-1 over the bytes sent); a JSON string is text.
        if matched_key(key.encode("utf-8").decode("latin-1"), encoded_keys) is None:
            raise SegmentRequestError(401, "unauthorized", "invalid write key")

    async def segment_body(request: Request, limit: int) -> tuple[Any, int]:
        """The authenticated body as JSON, and its size in bytes (decoded)."""
        raw = await _read_body(request, limit)
        try:
            payload = read_json(raw)
        except BadJson as exc:
            check_key(request.scope, None)
            raise SegmentRequestError(400, "invalid_json", str(exc)) from None
        check_key(request.scope, payload)
        return payload, len(raw)

    @api.post(
        "/v1/batch",
        openapi_extra=_body_schema(SegmentBatch),
        responses={200: {"description": '{"success": true}'}},
    )
    async def batch(request: Request) -> Response:
        """Segment's batch call: up to 500 KB of messages of any type, 32 KB each."""
        try:
            payload, size = await segment_body(request, MAX_BATCH_BYTES)
            parsed = _validate_batch(payload, context, size)
        except SegmentRequestError as exc:
            return _refused(request, exc)
        return await apply(parsed.batch, parsed.sentAt)

    async def single(request: Request, kind: str, payload: Any) -> Response:
        try:
            message = _validate_single(kind, payload, context)
        except SegmentRequestError as exc:
            return _refused(request, exc)
        return await apply([message], None)

    for kind in SINGLE_CALLS:

        async def call(request: Request, kind: str = kind) -> Response:
            try:
                payload, _ = await segment_body(request, MAX_MESSAGE_BYTES)
            except SegmentRequestError as exc:
                return _refused(request, exc)
            return await single(request, kind, payload)

        call.__doc__ = f"Segment's {kind} call (one message, at most 32 KB)."
        api.add_api_route(
            f"/v1/{kind}",
            call,
            methods=["POST"],
            name=f"segment_{kind}",
            openapi_extra=_body_schema(SegmentMessage),
        )

    @api.post(
        "/v1/identify",
        response_model=IdentifyOut,
        openapi_extra=_body_schema(IdentifyIn, SegmentMessage),
    )
    async def identify(request: Request) -> Response | IdentifyOut:
        """OneID: the engine's identify (``identities``, ``profile_id``, ``attributes``...;
        answers with the profile id and the merges) or Segment's (``userId``,
        ``anonymousId``, ``traits``; answers ``{"success": true}``), told apart by the body."""
        # Unauthenticated bodies are read only as far as Segment's limit (writeKey is inside).
        trusted = authenticated(request.scope) or not encoded_keys
        limit = MAX_BODY_BYTES if trusted else MAX_MESSAGE_BYTES
        try:
            payload, size = await segment_body(request, limit)
            if not isinstance(payload, dict) or not _SEGMENT_KEYS.intersection(payload):
                if encoded_keys and not authenticated(request.scope):
                    raise SegmentRequestError(
                        401, "unauthorized", "missing API key: send Authorization: Bearer <key>"
                    )
                return await identify_person(store, clock, _native_identify(payload, context))
            if size > MAX_MESSAGE_BYTES:
                raise _too_large(MAX_MESSAGE_BYTES)
        except SegmentRequestError as exc:
            return _refused(request, exc)
        return await single(request, "identify", payload)

    return api


# -- reading and validating ------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, gunzipped when sent gzipped; ``SegmentRequestError`` (400) beyond ``limit``
    bytes, read or decoded (never more than that is held)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        inflate = zlib.decompressobj(wbits=31)
        try:
            raw = inflate.decompress(raw, limit + 1)
        except zlib.error:
            raise SegmentRequestError(400, "invalid_body", "the gzip body is corrupt") from None
        if len(raw) > limit or inflate.unconsumed_tail:
            raise _too_large(limit)
    elif encoding not in ("identity", ""):
        raise SegmentRequestError(
            400, "invalid_body", f"unsupported Content-Encoding {encoding!r} (use gzip)"
        )
    return raw


def _too_large(limit: int) -> SegmentRequestError:
    return SegmentRequestError(
        400,
        "too_large",
        f"the body is larger than {limit // 1024} KB (Segment's limits: 32 KB a call, "
        "500 KB a batch); nothing was stored",
    )


def _validate_batch(
    payload: Any, context: dict[str, str] | None = None, size: int = MAX_BATCH_BYTES
) -> SegmentBatch:
    """The batch, or ``SegmentRequestError`` listing every bad message; ``size`` is the body's
    (when no more than one message's limit, no message can exceed it)."""
    if not isinstance(payload, dict):
        raise SegmentRequestError(
            400, "invalid_request", "the body must be a JSON object; nothing was stored"
        )
    items = payload.get("batch")
    errors: list[dict[str, Any]] = []
    if isinstance(items, list) and size > MAX_MESSAGE_BYTES:
        for index, item in enumerate(items):
            size = _json_size(item)
            if size > MAX_MESSAGE_BYTES:
                errors.append(
                    {
                        "index": index,
                        "field": "(message)",
                        "reason": f"is {size} bytes; the limit is {MAX_MESSAGE_BYTES}",
                    }
                )
    try:
        parsed = SegmentBatch.model_validate(payload, context=context)
    except ValidationError as exc:
        errors.extend(_errors(exc, batch=True))
    if errors:
        raise _invalid(errors)
    return parsed


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def _json_size(item: Any) -> int:
    """Bytes of ``item`` as compact UTF-8 JSON (one encoder for every call: a new one per
    message cost as much as validating it)."""
    try:
        text = _COMPACT.encode(item)
    except (ValueError, RecursionError):  # NaN, too deep: refused by validation, not here
        return 0
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _validate_single(kind: str, payload: Any, context: dict[str, str]) -> SegmentMessage:
    if not isinstance(payload, dict):
        raise SegmentRequestError(
            400, "invalid_request", "the body must be a JSON object; nothing was stored"
        )
    given = payload.get("type", kind)
    if given != kind:
        raise _invalid([{"field": "type", "reason": f"is {given!r} on the /v1/{kind} route"}])
    try:
        return SegmentMessage.model_validate({**payload, "type": kind}, context=context)
    except ValidationError as exc:
        raise _invalid(_errors(exc, batch=False)) from None


def _native_identify(payload: Any, context: dict[str, str]) -> IdentifyIn:
    try:
        return IdentifyIn.model_validate(payload, context=context)
    except ValidationError as exc:
        # The engine's own 422, as FastAPI would have reported it.
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


def _errors(exc: ValidationError, *, batch: bool) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = list(error["loc"])
        reason = str(error["msg"]).removeprefix("Value error, ")
        item: dict[str, Any] = {}
        if batch and len(loc) >= 2 and loc[0] == "batch" and isinstance(loc[1], int):
            item["index"] = loc[1]
            loc = loc[2:]
        item["field"] = ".".join(str(part) for part in loc) or "(message)"
        item["reason"] = reason
        found.append(item)
    return found


def _invalid(errors: list[dict[str, Any]]) -> SegmentRequestError:
    first = errors[0]
    where = f"message {first['index']}: " if "index" in first else ""
    message = f"{where}{first['field']}: {first['reason']}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return SegmentRequestError(400, "invalid_request", f"{message}; nothing was stored", errors)


def _refused(request: Request, exc: SegmentRequestError) -> JSONResponse:
    log.info("segment_request_rejected", path=request.url.path, status=exc.status, code=exc.code)
    return exc.response()


def _unavailable(message: str) -> JSONResponse:
    return JSONResponse(
        {"code": "unavailable", "message": message},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def _body_schema(*models: type[BaseModel]) -> dict[str, Any]:
    """An OpenAPI request body of any of ``models`` (declared here: the routes read the body
    themselves)."""
    schemas = [_inlined(model.model_json_schema()) for model in models]
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``#/$defs/...`` references replaced by the definitions (in the
    OpenAPI document ``#`` would be the document, not this schema; these models are not
    recursive)."""
    definitions = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(definitions[ref.removeprefix("#/$defs/")])
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


# -- applying ----------------------------------------------------------------------------------


def _event(message: SegmentMessage, received: datetime, sent_at: datetime | None) -> Event:
    return Event(
        event_id=message.messageId or str(uuid.uuid4()),
        profile_id=message.profile_id,
        name=message.event_name(),
        occurred_at=message.occurred_at(received, sent_at),
        properties=message.event_properties(),
    )


async def _flush(
    router: EventRouter, events: list[Event], received: datetime, counts: dict[str, int]
) -> None:
    if not events:
        return
    recorded = await router.ingest_batch(events, received)
    counts["events"] += len(recorded)
    counts["accepted"] += sum(r.fresh for r in recorded)
    events.clear()
