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
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    StrictFloat,
    StrictInt,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine.dsl.base import TIME_OF_DAY, AttributeName, Slug, Strict, given, not_given
from engine.dsl.conditions import Condition, Scalar
from engine.dsl.cron import parse_cron
from engine.dsl.durations import Duration

AUTHORING = {"authoring": True}
"""Validation context for documents read from files: checks that stored data is spared."""

_TIME_OF_DAY = re.compile(TIME_OF_DAY)
CRON_SHAPE = r"^\s*(@[A-Za-z]+|\S+(\s+\S+){4})\s*$"
"""Five fields or a shorthand (@daily); `engine.dsl.cron` checks each field's range."""
URL_SHAPE = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/]*[^\s/@](/\S*)?$"
"""An absolute http(s) URL with a host and no white space, as `WebhookTarget` checks it."""


class SegmentEntry(Strict):
    """Members of a segment enter when it is evaluated on ``schedule`` (cron, policy timezone)."""

    segment: Slug
    """The id of a segment file (segments/*.yaml), e.g. dormant_60_120."""
    schedule: str | None = Field(
        None, json_schema_extra={"pattern": CRON_SHAPE, "examples": ["0 10 * * *", "@daily"]}
    )
    """When the segment is evaluated: a 5-field cron in the policy's timezone, e.g. "0 10 * * *"
    (minute hour day-of-month month day-of-week)."""

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
    """The event name, e.g. registered or order_paid."""


class ApiEntry(Strict):
    """People enter only through the API / CLI (``journey enroll``)."""

    api: Literal[True]
    """Always true."""

    @field_validator("api", mode="before")
    @classmethod
    def _true(cls, value: Any) -> Any:
        # Literal[True] alone would take 1 for true.
        if value is not True:
            raise ValueError(f"expected api: true, got {value!r}")
        return value


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

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"required": ["policy"], "properties": {"policy": {"const": "after"}}},
            "then": given("cooldown"),
            "else": not_given("cooldown"),
        }
    )

    policy: Literal["once", "after", "always"] = "once"
    """once: never again; after: again once ``cooldown`` has passed since the last entry;
    always: whenever not already in the journey."""
    cooldown: Duration | None = None
    """With policy after only: how long after an entry a person may enter again, e.g. 7d."""

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
    """The conversion event, e.g. order_paid."""
    within: Duration
    """How long after entry the event counts as a conversion, e.g. 7d."""
    value: AttributeName | None = None
    """The event property holding the order's revenue, e.g. amount (optional)."""

    def reached(self, entered_at: datetime, occurred_at: datetime) -> bool:
        """Whether a goal event that occurred at ``occurred_at`` converts a run that entered at
        ``entered_at``: the event's own time decides, not when it arrived. The run (ending as
        ``converted``) and the report (counting conversions) both ask this."""
        return entered_at <= occurred_at <= entered_at + self.within


class ExitOn(Strict):
    """An event that ends the run at once (e.g. ``unsubscribed``)."""

    event: AttributeName
    """The event name, e.g. unsubscribed."""


class Cap(Strict):
    """A per-journey limit on top of the global policy: at most ``max`` sends ``per`` window."""

    max: StrictInt = Field(ge=1)
    """At most this many sends of this journey to one person ..."""
    per: Duration
    """... in this rolling window, e.g. 7d."""


class Budget(Strict):
    """What a journey may spend in all, across every person: sends and the value (e.g. the
    coupons' worth, in whole currency units) its send steps carry. Reserved atomically with
    the caps; a send that would overspend is suppressed (``budget_exhausted``)."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [given("max_sends"), given("max_value")]})

    max_sends: StrictInt | None = Field(None, ge=0)
    """At most this many messages sent, e.g. 50000."""
    max_value: StrictInt | None = Field(None, ge=0)
    """At most this much value sent (the sum of the send steps' value), e.g. 200000."""

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        if self.max_sends is None and self.max_value is None:
            raise ValueError("a budget needs max_sends, max_value or both")
        return self


class Target(Strict):
    """What the journey aims for by a date: `journey status` shows progress and pace."""

    conversions: StrictInt | None = Field(None, ge=1)
    """Converted runs (goal reached) to reach, e.g. 2000."""
    revenue: StrictInt | StrictFloat | None = Field(None, gt=0)
    """Revenue of the conversions (the goal's value) to reach, e.g. 500000."""
    by: date
    """The date the target is due, e.g. 2026-12-12 (in the policy's timezone)."""

    @field_validator("by")
    @classmethod
    def _ahead(cls, value: date, info: ValidationInfo) -> date:
        # Checked when a file is read (validate and deploy), not when a stored version is read
        # back: a target that has passed since is history, not an error.
        if info.context == AUTHORING and value < datetime.now(UTC).date():
            raise ValueError(f"the target date {value.isoformat()} is in the past")
        return value

    @model_validator(mode="after")
    def _some_goal(self) -> Target:
        if self.conversions is None and self.revenue is None:
            raise ValueError("a target needs conversions, revenue or both")
        return self


class WaitUntil(Strict):
    """Wait until the next ``HH:MM`` in the person's timezone."""

    until: str = Field(json_schema_extra={"pattern": TIME_OF_DAY, "examples": ["10:00"]})
    """A time of day HH:MM (24 hours), e.g. "10:00"."""

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
    """The step's id, unique in the journey; other steps name it in next / goto / on_*."""


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
    """Wait a duration or until a time of day, then go on."""

    wait: WaitLength
    """A duration such as 1h or 2d, or {until: "10:00"} (the next 10:00 in the person's
    timezone)."""
    next: Slug | None = None
    """The step after the wait; absent: the step below."""


class WaitFor(Strict):
    """Wait for an event, at most ``timeout``; two exits."""

    event: AttributeName
    """The event waited for, e.g. order_paid."""
    timeout: Duration
    """How long to wait at most, e.g. 2d."""
    on_event: Slug | None = None
    """The step when the event comes; absent: the step below."""
    on_timeout: Slug | None = None
    """The step when the timeout passes first; absent: the step below."""


class WaitForStep(StepBase):
    """Wait for an event with a timeout."""

    wait_for: WaitFor
    """{event: NAME, timeout: DURATION, on_event: STEP, on_timeout: STEP}."""


class When(Strict):
    """A case of a branch: when the condition holds, go to ``goto``."""

    when: Condition
    """A condition, e.g. {attribute: cart_value, gte: 200} or {tier: gold}."""
    goto: Slug
    """The step to go to when the condition holds."""


class Else(Strict):
    """The last case of a branch: where everyone else goes."""

    else_: Slug = Field(alias="else")
    """The step for people no case matched."""


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
    """Cases {when: CONDITION, goto: STEP}, in order, and optionally a last {else: STEP}."""

    @field_validator("branch")
    @classmethod
    def _else_last(cls, cases: list[When | Else]) -> list[When | Else]:
        for case in cases[:-1]:
            if isinstance(case, Else):
                raise ValueError("'else' must be the last case of a branch")
        return cases


class Variant(Strict):
    """One arm of a split, e.g. {variant: A, weight: 45, goto: copy_a}."""

    variant: Annotated[str, Field(min_length=1, max_length=32)]
    """The arm's name in reports, e.g. A, B or holdout."""
    weight: StrictFloat = Field(ge=0, le=100)
    """Its share in percent; the weights of a split sum to 100."""
    goto: Slug
    """The step people of this arm go to (a holdout goes to an exit)."""


class SplitStep(StepBase):
    """Weighted, sticky: hash(journey, step, person) into 10,000 buckets. Weights sum to 100."""

    split: list[Variant] = Field(min_length=2)
    """At least two arms {variant: NAME, weight: PERCENT, goto: STEP}."""


_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class WebhookTarget(Strict):
    """Where one send step's webhook goes, instead of the connector's ``JOURNEY_WEBHOOK_URL``.

    A secret never lives in a journey file: ``secret_env`` names the environment variable of the
    worker that holds it (default: ``JOURNEY_WEBHOOK_SECRET``).
    """

    url: str = Field(json_schema_extra={"pattern": URL_SHAPE})
    """The absolute http(s) URL the signed JSON is POSTed to."""
    secret_env: str | None = Field(None, json_schema_extra={"pattern": _ENV_NAME.pattern})
    """The environment variable holding the HMAC secret, e.g. CRM_WEBHOOK_SECRET."""

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
    """Send a template on a channel, through the caps and quiet hours of the policy."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": given("webhook"),
            "then": {"required": ["channel"], "properties": {"channel": {"const": "webhook"}}},
        }
    )

    channel: Slug = Field(json_schema_extra={"examples": ["email", "sms", "wecom", "push"]})
    """The connector, e.g. email, sms, wecom, push, webhook or console."""
    template: Slug
    """The template's file name in templates/ without .yaml, e.g. cart_a."""
    category: Literal["marketing", "transactional"] = "marketing"
    """marketing (capped, quiet hours) or transactional (exempt from caps, still counted)."""
    webhook: WebhookTarget | None = None
    """This step's webhook target (``channel: webhook`` only)."""
    next: Slug | None = None
    """The step after the send; absent: the step below."""
    on_suppressed: Slug | None = None
    """The step when caps or quiet hours stop the send; absent: the policy's on_capped."""
    on_failure: Slug | None = None
    """The step when the channel refuses the message for good; absent: the run ends failed."""
    value: StrictInt = Field(0, ge=0)
    """What one message is worth against the budget's max_value, e.g. 20 (a coupon's value)."""

    @field_validator("webhook")
    @classmethod
    def _webhook_channel(cls, value: WebhookTarget | None, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("channel") != "webhook":
            raise ValueError("a webhook target belongs to a step with channel: webhook")
        return value


class SendStep(StepBase):
    """Send a message."""

    send: Send
    """{channel: CHANNEL, template: TEMPLATE, ...}."""


class Update(Strict):
    """Change the person's profile: set attributes, add and remove tags."""

    attributes: dict[AttributeName, Scalar | None] = Field(
        default_factory=dict, json_schema_extra={"additionalProperties": False}
    )
    """Attributes to set, e.g. {winback_sent: true}; null removes one."""
    add_tags: list[str] = Field(default_factory=list)
    """Tags to add, e.g. [winback]."""
    remove_tags: list[str] = Field(default_factory=list)
    """Tags to remove."""


class UpdateStep(StepBase):
    """Update the person's profile."""

    update: Update
    """{attributes: {...}, add_tags: [...], remove_tags: [...]}."""
    next: Slug | None = None
    """The step after the update; absent: the step below."""


class ExitBody(Strict):
    """How the run ends."""

    reason: str | None = None
    """Why, in reports, e.g. holdout."""


def _exit_schema(schema: dict[str, Any]) -> None:
    # `exit:` alone (null) is an exit too; the key is what makes the step an exit step.
    schema["required"] = ["id", "exit"]
    schema["properties"]["exit"] = {
        "anyOf": [schema["properties"]["exit"], {"type": "null"}],
        "description": schema["properties"]["exit"].pop("description"),
    }


class ExitStep(StepBase):
    """End the run."""

    model_config = ConfigDict(json_schema_extra=_exit_schema)

    exit: ExitBody = Field(default_factory=ExitBody)
    """{} or {reason: TEXT}."""

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
    """The journey's stable id, e.g. cart-recovery; each deploy with new content is a version."""
    name: str = Field(min_length=1, max_length=200)
    """A readable name, shown in reports."""
    description: str = ""
    """What the journey is for."""
    priority: StrictInt = Field(50, ge=0, le=100)
    """0-100; when journeys compete for one person, the higher priority sends."""
    entry: Entry
    """Who enters: {segment: ID, schedule: CRON}, {event: NAME} or {api: true}."""
    reentry: Reentry = Field(default_factory=Reentry)
    """May a person enter again: {policy: once | after | always, cooldown: DURATION}."""
    goal: Goal | None = None
    """The conversion, e.g. {event: order_paid, within: 7d}: it ends the run at once."""
    exit_on: list[ExitOn] = Field(default_factory=list)
    """Events that end the run at once, e.g. [{event: unsubscribed}]."""
    caps: list[Cap] = Field(default_factory=list)
    """This journey's own limits, e.g. [{max: 1, per: 7d}], on top of the policy's."""
    tags: list[Slug] = Field(default_factory=list)
    """Message categories, for the policy's per-tag caps and budgets, e.g. [promotion]."""
    budget: Budget | None = None
    """What the journey may spend in all, e.g. {max_sends: 50000, max_value: 200000}."""
    target: Target | None = None
    """What it aims for, e.g. {conversions: 2000, revenue: 500000, by: 2026-12-12}."""
    steps: list[Step] = Field(min_length=1)
    """The steps, in order; a step without next goes to the one below it."""

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
