"""The journey file: entry, re-entry, goal, exits, caps and the step graph.

Every step has an ``id`` and exactly one kind key (``wait``, ``wait_for``, ``branch``, ``split``,
``send``, ``update``, ``exit``). A step without an explicit successor goes to the one below it.
Graph-level rules (targets exist, every step reachable, no loop without a wait, weights sum to 100)
are checked in `engine.dsl.graph`, so that all problems are reported at once with their location.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine.dsl.base import AttributeName, Slug, Strict
from engine.dsl.conditions import Condition, Scalar
from engine.dsl.cron import parse_cron
from engine.dsl.durations import Duration

AUTHORING = {"authoring": True}
"""Validation context for documents read from files: checks that stored data is spared."""

_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class SegmentEntry(Strict):
    """Members of a segment enter when it is evaluated on ``schedule`` (cron, policy timezone)."""

    segment: Slug
    schedule: str | None = Field(
        None, description='5-field cron in the policy\'s timezone, e.g. "0 10 * * *"'
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Checked when a file is read (the loader passes AUTHORING), not when a stored version
        # or a run's input is read back: those may hold a cron an older release accepted, and
        # refusing them here would break runs in flight. Schedules are built with parse_cron.
        if value is not None and info.context == AUTHORING:
            parse_cron(value)  # the one reading: the schedule is created from its result
        return value


class EventEntry(Strict):
    """A person enters when they do ``event``."""

    event: AttributeName


class ApiEntry(Strict):
    """People enter only through the API / CLI (``journey enroll``)."""

    api: Literal[True]


def _entry_kind(value: Any) -> str | None:
    for key in ("segment", "event", "api"):
        if (key in value) if isinstance(value, dict) else getattr(value, key, None) is not None:
            return key
    return None


Entry = Annotated[
    Annotated[SegmentEntry, Tag("segment")]
    | Annotated[EventEntry, Tag("event")]
    | Annotated[ApiEntry, Tag("api")],
    Discriminator(
        _entry_kind,
        custom_error_type="entry_kind",
        custom_error_message="expected an entry: {segment: ID}, {event: NAME} or {api: true}",
    ),
]


class Reentry(Strict):
    """May a person enter again? Never two live runs per person, whatever the policy."""

    policy: Literal["once", "after", "always"] = "once"
    cooldown: Duration | None = None

    @model_validator(mode="after")
    def _cooldown_with_after(self) -> Reentry:
        if self.policy == "after" and self.cooldown is None:
            raise ValueError("policy 'after' needs a cooldown, e.g. {policy: after, cooldown: 7d}")
        if self.policy != "after" and self.cooldown is not None:
            raise ValueError("a cooldown goes only with policy 'after'")
        return self


class Goal(Strict):
    """Conversion: ``event`` within ``within`` of entry. It ends the run at once, even mid-wait.

    ``value`` names the event property holding the order's revenue (e.g. ``amount``); the report
    sums it per person, step, variant and channel. Without it conversions carry no revenue."""

    event: AttributeName
    within: Duration
    value: AttributeName | None = None

    def reached(self, entered_at: datetime, occurred_at: datetime) -> bool:
        """Whether a goal event that occurred at ``occurred_at`` converts a run that entered at
        ``entered_at``: the event's own time decides, not when it arrived. The run (ending as
        ``converted``) and the report (counting conversions) both ask this."""
        return entered_at <= occurred_at <= entered_at + self.within


class ExitOn(Strict):
    """An event that ends the run at once (e.g. ``unsubscribed``)."""

    event: AttributeName


class Cap(Strict):
    """A per-journey limit on top of the global policy: at most ``max`` sends ``per`` window."""

    max: int = Field(ge=1)
    per: Duration


class WaitUntil(Strict):
    """Wait until the next ``HH:MM`` in the person's timezone."""

    until: str

    @field_validator("until")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        if not _TIME_OF_DAY.match(value):
            raise ValueError(f"expected a time of day HH:MM such as '10:00', got {value!r}")
        return value

    @property
    def hour_minute(self) -> tuple[int, int]:
        hour, minute = self.until.split(":")
        return int(hour), int(minute)


class StepBase(Strict):
    id: Slug


def _wait_kind(value: Any) -> str | None:
    # Decided by the shape of the value, so a bad duration gets one message about durations
    # instead of one per union member ("not a valid dictionary or instance of WaitUntil").
    if isinstance(value, str | timedelta):
        return "duration"
    if isinstance(value, dict | WaitUntil):
        return "until"
    return None


WaitLength = Annotated[
    Annotated[Duration, Tag("duration")] | Annotated[WaitUntil, Tag("until")],
    Discriminator(
        _wait_kind,
        custom_error_type="wait_kind",
        custom_error_message=(
            "expected a duration such as 30m, 1h, 2d or 1w, or a time of day {until: '10:00'}"
        ),
    ),
]
"""``wait: 1h`` or ``wait: {until: "10:00"}`` (the next 10:00 in the person's timezone)."""


class WaitStep(StepBase):
    wait: WaitLength
    next: Slug | None = None


class WaitFor(Strict):
    event: AttributeName
    timeout: Duration
    on_event: Slug | None = None
    on_timeout: Slug | None = None


class WaitForStep(StepBase):
    wait_for: WaitFor


class When(Strict):
    when: Condition
    goto: Slug


class Else(Strict):
    else_: Slug = Field(alias="else")


def _case_kind(value: Any) -> str | None:
    # By the keys present, so a case is checked against one model and a mistake in it is reported
    # once, not once as a `when` and again as an `else`.
    if isinstance(value, dict):
        if "when" in value or "goto" in value:
            return "when"
        if "else" in value or "else_" in value:
            return "else"
        return None
    if isinstance(value, When):
        return "when"
    if isinstance(value, Else):
        return "else"
    return None


Case = Annotated[
    Annotated[When, Tag("when")] | Annotated[Else, Tag("else")],
    Discriminator(
        _case_kind,
        custom_error_type="case_kind",
        custom_error_message="expected a case {when: CONDITION, goto: STEP} or {else: STEP}",
    ),
]


class BranchStep(StepBase):
    """First matching ``when`` wins; ``else`` (last) otherwise; with no else, the step below."""

    branch: list[Case] = Field(min_length=1)

    @field_validator("branch")
    @classmethod
    def _else_last(cls, cases: list[When | Else]) -> list[When | Else]:
        for case in cases[:-1]:
            if isinstance(case, Else):
                raise ValueError("'else' must be the last case of a branch")
        return cases


class Variant(Strict):
    variant: Annotated[str, Field(min_length=1, max_length=32)]
    weight: float = Field(ge=0, le=100)
    goto: Slug


class SplitStep(StepBase):
    """Weighted, sticky: hash(journey, step, person) into 10,000 buckets. Weights sum to 100."""

    split: list[Variant] = Field(min_length=2)


_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class WebhookTarget(Strict):
    """Where one send step's webhook goes, instead of the connector's ``JOURNEY_WEBHOOK_URL``.

    A secret never lives in a journey file: ``secret_env`` names the environment variable of the
    worker that holds it (default: ``JOURNEY_WEBHOOK_SECRET``).
    """

    url: str = Field(description="absolute http(s) URL the signed JSON is POSTed to")
    secret_env: str | None = Field(
        None, description="environment variable holding the HMAC secret, e.g. CRM_WEBHOOK_SECRET"
    )

    @field_validator("url")
    @classmethod
    def _absolute_http(cls, value: str) -> str:
        scheme, _, rest = value.partition("://")
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        if scheme.lower() not in ("http", "https") or not host or any(c.isspace() for c in value):
            raise ValueError(f"expected an absolute http(s) URL, got {value!r}")
        return value

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError(
                f"expected an environment variable name such as CRM_WEBHOOK_SECRET, got {value!r}"
            )
        return value


class Send(Strict):
    channel: Slug
    template: Slug
    category: Literal["marketing", "transactional"] = "marketing"
    webhook: WebhookTarget | None = None
    """This step's webhook target (``channel: webhook`` only)."""
    next: Slug | None = None
    on_suppressed: Slug | None = None
    on_failure: Slug | None = None

    @field_validator("webhook")
    @classmethod
    def _webhook_channel(cls, value: WebhookTarget | None, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("channel") != "webhook":
            raise ValueError("a webhook target belongs to a step with channel: webhook")
        return value


class SendStep(StepBase):
    send: Send


class Update(Strict):
    attributes: dict[AttributeName, Scalar | None] = Field(default_factory=dict)
    add_tags: list[str] = Field(default_factory=list)
    remove_tags: list[str] = Field(default_factory=list)


class UpdateStep(StepBase):
    update: Update
    next: Slug | None = None


class ExitBody(Strict):
    reason: str | None = None


class ExitStep(StepBase):
    exit: ExitBody = Field(default_factory=ExitBody)

    @field_validator("exit", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


STEP_KINDS = ("wait", "wait_for", "branch", "split", "send", "update", "exit")


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = value.keys()
    elif isinstance(value, Strict):
        keys = type(value).model_fields.keys()
    else:
        # A scalar or a list where a step belongs: no kind, so the located "expected a step" error.
        return None
    found = [k for k in STEP_KINDS if k in keys]
    return found[0] if len(found) == 1 else None


Step = Annotated[
    Annotated[WaitStep, Tag("wait")]
    | Annotated[WaitForStep, Tag("wait_for")]
    | Annotated[BranchStep, Tag("branch")]
    | Annotated[SplitStep, Tag("split")]
    | Annotated[SendStep, Tag("send")]
    | Annotated[UpdateStep, Tag("update")]
    | Annotated[ExitStep, Tag("exit")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message=(
            "expected a step with an id and exactly one of the keys " + ", ".join(STEP_KINDS)
        ),
    ),
]


class Journey(Strict):
    """One journey file. Its content hash identifies a version: same content, same version."""

    id: Slug
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    priority: int = Field(50, ge=0, le=100, description="higher wins arbitration")
    entry: Entry
    reentry: Reentry = Field(default_factory=Reentry)
    goal: Goal | None = None
    exit_on: list[ExitOn] = Field(default_factory=list)
    caps: list[Cap] = Field(default_factory=list)
    tags: list[Slug] = Field(
        default_factory=list, description="message categories, for the policy's per-tag caps"
    )
    steps: list[Step] = Field(min_length=1)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def following(self, step_id: str) -> str | None:
        """The step below ``step_id`` (the default successor), or None at the end."""
        ids = [s.id for s in self.steps]
        index = ids.index(step_id)
        return ids[index + 1] if index + 1 < len(ids) else None

    def templates(self) -> set[str]:
        return {s.send.template for s in self.steps if isinstance(s, SendStep)}

    def listens_for(self) -> set[str]:
        """Event names this journey reacts to (goal, exit_on, wait_for, event entry)."""
        names = {e.event for e in self.exit_on}
        if self.goal:
            names.add(self.goal.event)
        if isinstance(self.entry, EventEntry):
            names.add(self.entry.event)
        names |= {s.wait_for.event for s in self.steps if isinstance(s, WaitForStep)}
        return names

    def content_hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
