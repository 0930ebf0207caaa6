"""Request and response bodies of the HTTP API, with the limits every item must meet.

The limits keep one bad client from filling the store or breaking a backend: a value that
validates here can be written to SQLite and PostgreSQL and carried in a Temporal signal (no NUL
characters, no lone surrogates, no NaN/Infinity, bounded size and depth).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine.identity import DEFAULT_REGION, MAX_IDENTITY_VALUE, IdentityType, identity
from engine.services.enroll import Outcome

MAX_BATCH = 1000
"""Items per request, for events and for profiles."""
MAX_JSON_BYTES = 32 * 1024
"""Event properties and profile attributes, serialised as compact UTF-8 JSON."""
MAX_JSON_DEPTH = 32
MAX_TAGS = 100
MAX_BODY_BYTES = MAX_BATCH * (MAX_JSON_BYTES + 1024)
"""Large enough for any valid batch (every item at its limits), refused with 413 above it."""

_EVENT_NAME = r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$"
_LOCALE = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,7}$"
_FROZEN = ConfigDict(frozen=True, extra="forbid")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _plain_text(value: str) -> str:
    """Refuse what no backend stores faithfully: control characters in identifiers."""
    if found := _CONTROL.search(value):
        raise ValueError(f"must not contain control characters (found {found.group()!r})")
    if not value.isascii():
        _encodable(value)
    return value


def _encodable(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must not contain unpaired surrogates (invalid Unicode)") from exc


def _check_json(value: Any, path: str, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels at {path}")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"string at {path} contains a NUL character (\\u0000)")
        _encodable(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"key {key!r} at {path} is not a string")
            if "\x00" in key:
                raise ValueError(f"a key at {path} contains a NUL character (\\u0000)")
            _encodable(key)
            _check_json(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", depth + 1)


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON object every backend can store, at most ``MAX_JSON_BYTES`` serialised."""
    if _small_flat_and_clean(value):
        return value
    # Anything else: serialise once to measure it, and walk it when something looks wrong, to
    # name the path of the problem.
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except RecursionError:
        _check_json(value, "$", 0)  # raises: nested too deep
        raise
    except ValueError as exc:  # NaN / Infinity, which JSON does not have
        _check_json(value, "$", 0)
        raise ValueError(f"is not valid JSON: {exc}") from exc
    except TypeError as exc:
        raise ValueError(f"is not JSON-serialisable: {exc}") from exc
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        _check_json(value, "$", 0)  # raises: an unpaired surrogate
        raise
    # Brackets inside strings only make this check cautious, never wrong.
    if "\\u0000" in text or text.count("{") + text.count("[") > MAX_JSON_DEPTH:
        _check_json(value, "$", 0)
    if size > MAX_JSON_BYTES:
        raise ValueError(f"is {size} bytes as JSON; the limit is {MAX_JSON_BYTES}")
    return value


def _small_flat_and_clean(value: dict[str, Any]) -> bool:
    """The common case, decided without serialising: scalar values only, printable ASCII
    strings, finite numbers, and an upper bound on the JSON size far below the limit."""
    bound = 2
    texts: list[str] = []
    for key, item in value.items():
        kind = type(item)
        if kind is str:
            texts.append(item)
            bound += 2 * len(item)  # every character escaped, at worst
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif kind is int:
            if not -(10**18) < item < 10**18:
                return False
        elif kind is not bool and item is not None:
            return False
        if type(key) is not str:
            return False
        texts.append(key)
        bound += 2 * len(key) + 30  # quotes, separators, and a number of up to 24 characters
    if bound > MAX_JSON_BYTES:
        return False
    # Every key and string at once: one scan instead of one per string.
    text = "".join(texts)
    return text.isascii() and not _CONTROL.search(text)


def _iso_string(value: Any) -> Any:
    # Pydantic would also take Unix timestamps; the API promises ISO-8601 only.
    if not isinstance(value, str | datetime):
        raise ValueError(
            "must be an ISO-8601 string with a timezone, e.g. 2026-11-18T10:00:00+08:00"
        )
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must include a timezone (Z or an offset such as +08:00)")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("is out of range") from exc


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA timezone {value!r}") from exc
    return value


Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_plain_text)
]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]
Timestamp = Annotated[datetime, BeforeValidator(_iso_string), AfterValidator(_utc)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_plain_text)]
TimezoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_timezone)]


def _new_event_id() -> str:
    return str(uuid.uuid4())


class EventIn(BaseModel):
    """One customer event. Resending an event with the same ``event_id`` is harmless (it comes
    back as ``duplicate``); without an ``event_id`` a random one is made, so a resend would be
    stored twice."""

    model_config = _FROZEN

    event_id: Identifier = Field(default_factory=_new_event_id)
    profile_id: Identifier
    name: Annotated[str, StringConstraints(pattern=_EVENT_NAME)]
    occurred_at: Timestamp | None = Field(
        None, description="ISO-8601 with a timezone; default: when the API received it"
    )
    properties: JsonObject = Field(default_factory=dict)


class EventBatch(BaseModel):
    model_config = _FROZEN

    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)


class EventResult(BaseModel):
    model_config = _FROZEN

    index: int
    event_id: str
    status: Literal["accepted", "duplicate"]


class EventBatchResult(BaseModel):
    model_config = _FROZEN

    results: list[EventResult]


class ProfileIn(BaseModel):
    """A person's profile. Upserting replaces every field of an existing profile: an omitted
    field is reset to its default, not kept."""

    model_config = _FROZEN

    id: Identifier
    attributes: JsonObject = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    timezone: TimezoneName = "Asia/Shanghai"
    locale: Annotated[str, StringConstraints(pattern=_LOCALE, max_length=35)] = "zh-CN"


class ProfileBatch(BaseModel):
    model_config = _FROZEN

    profiles: list[ProfileIn] = Field(min_length=1, max_length=MAX_BATCH)


class ProfileBatchResult(BaseModel):
    model_config = _FROZEN

    received: int
    upserted: int = Field(description="distinct profile ids written (the last item wins)")


class Health(BaseModel):
    model_config = _FROZEN

    status: Literal["ok", "unavailable"]
    reason: str | None = None


# -- people: identify and consent --------------------------------------------------------------

MAX_IDENTITIES = 20
"""Identities per identify call."""
CHANNEL_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
SOURCE_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
Locale = Annotated[str, StringConstraints(pattern=_LOCALE, max_length=35)]


class IdentityIn(BaseModel):
    """One identity; the value is normalised (emails lower-cased, phones to E.164, national
    numbers read in the API's default region) before it is matched. Types: ``email``,
    ``phone``, ``wecom_external_id``, ``app_user_id``, ``store_member_no``, ``wechat_unionid``,
    ``miniprogram_openid``."""

    model_config = _FROZEN

    type: IdentityType
    value: Annotated[str, StringConstraints(min_length=1, max_length=MAX_IDENTITY_VALUE + 66)]

    @field_validator("value")
    @classmethod
    def _normalised(cls, value: str, info: ValidationInfo) -> str:
        type_ = info.data.get("type")
        if type_ is None:  # the type is invalid and reported on its own
            return value
        return identity(type_, value, region_of(info)).value


def region_of(info: ValidationInfo) -> str:
    """The region national phone numbers are read in: ``{"region": ...}`` in the validation
    context (the API passes its setting), else ``DEFAULT_REGION``."""
    context = info.context
    region = context.get("region") if isinstance(context, dict) else None
    return region if isinstance(region, str) else DEFAULT_REGION


class IdentifyIn(BaseModel):
    """Who a person is: identities they are known by, and/or a profile id you already hold.
    Profiles these belong to are merged into one (the oldest survives)."""

    model_config = _FROZEN

    identities: list[IdentityIn] = Field(default_factory=list, max_length=MAX_IDENTITIES)
    profile_id: Identifier | None = Field(
        None, description="a profile id you already use for this person (created if new)"
    )
    attributes: JsonObject = Field(
        default_factory=dict, description="merged into the profile; null deletes a key"
    )
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS, description="added")
    timezone: TimezoneName | None = None
    locale: Locale | None = None

    @model_validator(mode="after")
    def _someone(self) -> IdentifyIn:
        if not self.identities and self.profile_id is None:
            raise ValueError("give at least one identity or a profile_id")
        return self


class IdentifyOut(BaseModel):
    model_config = _FROZEN

    profile_id: str = Field(description="the person's profile id (the survivor of any merge)")
    created: bool
    merged: list[str] = Field(description="profile ids merged into profile_id by this call")


class SubscriptionIn(BaseModel):
    model_config = _FROZEN

    status: Literal["subscribed", "unsubscribed"]
    source: Annotated[str, StringConstraints(pattern=SOURCE_PATTERN)] = Field(
        "api", description="where the consent was given or withdrawn (api, store, wecom...)"
    )


class SubscriptionOut(BaseModel):
    model_config = _FROZEN

    profile_id: str
    channel: str
    status: Literal["subscribed", "unsubscribed"]
    source: str
    updated_at: datetime


# -- journeys: API entry ------------------------------------------------------------------------


class TriggerIn(BaseModel):
    model_config = _FROZEN

    profile_ids: list[Identifier] = Field(min_length=1, max_length=MAX_BATCH)


class TriggerResult(BaseModel):
    model_config = _FROZEN

    profile_id: str
    outcome: Outcome


class TriggerOut(BaseModel):
    model_config = _FROZEN

    journey_id: str
    version: int
    counts: dict[str, int]
    results: list[TriggerResult]


class ControlIn(BaseModel):
    """Why the journey's state changes (kept with the change)."""

    model_config = _FROZEN

    reason: str | None = Field(None, max_length=500)


class ControlOut(BaseModel):
    model_config = _FROZEN

    journey_id: str
    state: str
    previous: str
    changed_by: str
    changed_at: datetime
    reason: str | None
    live_runs_told: int
    live_runs_unreached: list[str]
