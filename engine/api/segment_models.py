"""The Segment HTTP tracking API's messages (``track``, ``identify``, ``page``, ``screen``,
``alias``, ``group``), validated with the same limits as the engine's own API, and how each maps
onto the engine: the profile it belongs to, the event it records, the time it happened.

Mapping (what a Segment user must know):

- a message's person is its ``userId``; a message with only an ``anonymousId`` belongs to the
  profile ``anon:<anonymousId>`` (``ANONYMOUS_PREFIX``), so the two kinds of id never collide;
- ``track`` records the event named by ``event``: a name the engine's journeys can use
  (``order_paid``) is kept, any other is folded to snake case (``Order Completed`` ->
  ``order_completed``); ``page`` / ``screen`` record ``page_viewed`` / ``screen_viewed`` with the
  message's ``properties`` plus its ``name`` (and ``category``);
- the time of an event: ``receivedAt - (sentAt - originalTimestamp)`` when the client sent both
  (its clock may be wrong, the difference between its two readings is not), the client's
  ``timestamp`` / ``originalTimestamp`` when it sent no ``sentAt``, else the time received;
- an identify's traits are ``traits``, over ``context.traits`` (where RudderStack's SDKs put
  them);
- ``traits.email`` and ``traits.phone`` are OneID identities as well as attributes (normalised;
  an invalid one refuses the message, naming the field).

Unknown fields (``integrations``, ``channel``, ``version``...) are accepted and ignored.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    model_validator,
)

from engine.api.models import (
    Identifier,
    JsonObject,
    Timestamp,
    _json_object,
    _plain_text,
    region_of,
)
from engine.identity import DEFAULT_REGION, Identity, InvalidIdentity, identity

MAX_MESSAGE_BYTES = 32 * 1024
"""One message (a call to /v1/track, ... or one item of a batch), as Segment limits it."""
MAX_BATCH_BYTES = 500 * 1024
"""One /v1/batch request, after any gzip decoding."""
ANONYMOUS_PREFIX = "anon:"
MessageType = Literal["track", "identify", "page", "screen", "alias", "group"]
IDENTITY_TRAITS = ("email", "phone")
"""Traits that are also OneID identities."""

_EVENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")
_NOT_NAME = re.compile(r"[^a-z0-9]+")
_LENIENT = ConfigDict(frozen=True, extra="ignore")

AnonymousId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128 - len(ANONYMOUS_PREFIX)),
    AfterValidator(_plain_text),
]
"""An ``Identifier`` short enough to carry the prefix."""
Label = Annotated[str, StringConstraints(max_length=200), AfterValidator(_plain_text)]
"""A page's or screen's name or category (stored with the event's properties)."""


def event_name(name: str) -> str:
    """The engine's name for a Segment event: kept when journeys can use it as it is, else
    folded to snake case; ``ValueError`` when nothing usable is left."""
    if _EVENT_NAME.match(name):
        return name
    folded = _NOT_NAME.sub("_", name.lower()).strip("_")
    if not folded or not _EVENT_NAME.match(folded):
        raise ValueError(
            "needs ASCII letters or digits (journeys name events like order_paid; "
            "'Order Completed' becomes order_completed)"
        )
    return folded


class SegmentMessage(BaseModel):
    """One message of the Segment spec (the fields the engine reads; others are ignored)."""

    model_config = _LENIENT

    type: MessageType
    userId: Identifier | None = None
    anonymousId: AnonymousId | None = None
    messageId: Identifier | None = Field(
        None, description="deduplicates: a message sent again with the same id is stored once"
    )
    timestamp: Timestamp | None = None
    originalTimestamp: Timestamp | None = None
    sentAt: Timestamp | None = None
    event: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    name: Label | None = None
    category: Label | None = None
    properties: JsonObject = Field(default_factory=dict)
    traits: JsonObject = Field(default_factory=dict)
    context: dict[str, Any] = Field(
        default_factory=dict, description="read for traits only (an identify's context.traits)"
    )
    previousId: Identifier | None = None
    groupId: Identifier | None = None

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> SegmentMessage:
        if self.type == "alias":
            if self.userId is None or self.previousId is None:
                raise ValueError("alias needs userId and previousId")
        elif self.userId is None and self.anonymousId is None:
            raise ValueError("needs userId or anonymousId")
        if self.type == "track":
            if self.event is None:
                raise ValueError("track needs event (the event's name)")
            event_name(self.event)
        if self.type == "group" and self.groupId is None:
            raise ValueError("group needs groupId")
        if self.type == "identify":
            self.identities(region_of(info))  # raises naming the trait
        return self

    def person_traits(self) -> dict[str, Any]:
        """The traits that describe the person (an identify's ``context.traits`` under its
        ``traits``; a group's traits describe the group)."""
        if self.type != "identify" or "traits" not in self.context:
            return dict(self.traits)
        in_context = self.context["traits"]
        if not isinstance(in_context, dict):
            raise ValueError("context.traits must be an object")
        try:
            # Stored as attributes: the same limits as traits (which pydantic checked).
            return _json_object({**in_context, **self.traits})
        except ValueError as exc:
            raise ValueError(f"context.traits {exc}") from None

    # -- mapping ----------------------------------------------------------------------------

    @property
    def profile_id(self) -> str:
        """The profile this message is about."""
        if self.userId is not None:
            return self.userId
        assert self.anonymousId is not None  # checked by the validator
        return ANONYMOUS_PREFIX + self.anonymousId

    def merged_ids(self) -> list[str]:
        """Profile ids this message merges into :attr:`profile_id`: the anonymous visitor an
        identify names beside the user id; an alias's previous id (a user id or an anonymous
        id: the spec allows either, so both)."""
        if self.type == "alias":
            assert self.previousId is not None
            previous = [self.previousId, ANONYMOUS_PREFIX + self.previousId]
            return [p for p in previous if p != self.profile_id and len(p) <= 128]
        if self.type == "identify" and self.userId is not None and self.anonymousId is not None:
            return [ANONYMOUS_PREFIX + self.anonymousId]
        return []

    def identities(self, region: str = DEFAULT_REGION) -> list[Identity]:
        """``traits.email`` / ``traits.phone``, normalised (national phone numbers read in
        ``region``); ``ValueError`` naming the trait. A group's traits are the group's, not the
        person's: none."""
        if self.type == "group":
            return []
        found: list[Identity] = []
        traits = self.person_traits()
        for trait in IDENTITY_TRAITS:
            value = traits.get(trait)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValueError(f"traits.{trait} must be a string")
            try:
                found.append(identity(trait, value, region))
            except InvalidIdentity as exc:
                raise ValueError(f"traits.{trait} {exc}") from None
        return found

    def attributes(self, region: str = DEFAULT_REGION) -> dict[str, Any]:
        """What the message sets on the profile: traits (identity traits normalised), or for a
        group call the group's id and traits."""
        if self.type == "group":
            group: dict[str, Any] = {"group_id": self.groupId}
            if self.traits:
                group["group"] = dict(self.traits)
            return group
        attributes = self.person_traits()
        for found in self.identities(region):
            attributes[found.type] = found.value
        return attributes

    def event_name(self) -> str:
        if self.type == "page":
            return "page_viewed"
        if self.type == "screen":
            return "screen_viewed"
        assert self.event is not None
        return event_name(self.event)

    def event_properties(self) -> dict[str, Any]:
        if self.type in ("page", "screen"):
            extra = {"name": self.name, "category": self.category}
            return {**{k: v for k, v in extra.items() if v is not None}, **self.properties}
        return dict(self.properties)

    def occurred_at(self, received: datetime, batch_sent_at: datetime | None) -> datetime:
        """When it happened, corrected for the client's clock skew (see the module doc)."""
        original = self.originalTimestamp or self.timestamp
        sent = self.sentAt or batch_sent_at
        if original is None:
            return received
        if sent is None:
            return original
        try:
            return received - (sent - original)
        except OverflowError:
            return original


class SegmentBatch(BaseModel):
    """``POST /v1/batch``: messages, and what applies to all of them."""

    model_config = _LENIENT

    batch: list[SegmentMessage] = Field(min_length=1)
    sentAt: Timestamp | None = None
    context: JsonObject = Field(default_factory=dict)
