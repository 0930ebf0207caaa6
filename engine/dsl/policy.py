"""The contact policy (``journeys/policy.yaml``): the anti-harassment rules every send obeys.

    timezone: Asia/Shanghai            # for people without one, and for segment schedules
    window: rolling                    # rolling (default) | calendar (days in the person's tz)
    caps:
      global: [{max: 1, per: 1d}, {max: 3, per: 7d}]     # all marketing touches, all journeys
      channels: {sms: [{max: 2, per: 7d}]}
      tags: {promotion: [{max: 2, per: 7d}]}            # message categories (a journey's tags)
    quiet_hours: {from: "21:00", to: "09:00", action: defer}   # defer | drop, person's time
    on_capped: {action: defer, expire_after: 2d}        # defer | skip | exit
    arbitration: {window: 10m}         # highest priority wins; absent = first come, first served
    experiments: {min_sample: 100}     # no winner before every arm has this many people
    budgets: {coupon: {max_sends: 50000, max_value: 200000}}   # shared by the tag's journeys

A journey adds its own ``caps`` and ``priority``; a send step may override ``on_suppressed``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, StrictInt, field_validator, model_validator

from engine.dsl.base import TIME_OF_DAY, Slug, Strict
from engine.dsl.durations import Duration, format_duration
from engine.dsl.models import Budget

_TIME_OF_DAY = re.compile(TIME_OF_DAY)
_TIME_JSON: dict[str, Any] = {"pattern": TIME_OF_DAY, "examples": ["21:00", "09:00"]}
LONGEST_WINDOW = timedelta(days=90)


class CapRule(Strict):
    """At most ``max`` touches ``per`` window (1 minute to 90 days)."""

    max: StrictInt = Field(ge=1, le=1000)
    """At most this many touches (1-1000) ..."""
    per: Duration
    """... in this window, 1m to 90d, e.g. 7d."""

    @field_validator("per")
    @classmethod
    def _window_range(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= LONGEST_WINDOW:
            raise ValueError("a cap window is between 1m and 90d")
        return value


class Caps(Strict):
    """Frequency caps per person, over all journeys; every rule must allow a send."""

    global_: list[CapRule] = Field(default_factory=list, alias="global")
    """All marketing touches, e.g. [{max: 1, per: 1d}, {max: 3, per: 7d}]."""
    channels: dict[Slug, list[CapRule]] = Field(
        default_factory=dict, json_schema_extra={"additionalProperties": False}
    )
    """Per channel, e.g. {sms: [{max: 2, per: 7d}]}."""
    tags: dict[Slug, list[CapRule]] = Field(
        default_factory=dict, json_schema_extra={"additionalProperties": False}
    )
    """Per message category (a journey's tags), e.g. {promotion: [{max: 2, per: 7d}]}."""


class QuietHours(Strict):
    """No marketing between ``from`` and ``to`` in the person's timezone (may span midnight)."""

    from_: str = Field(alias="from", json_schema_extra=_TIME_JSON)
    """Start, HH:MM, e.g. "21:00"."""
    to: str = Field(json_schema_extra=_TIME_JSON)
    """End, HH:MM, e.g. "09:00" (earlier than from: the window spans midnight)."""
    action: Literal["defer", "drop"] = "defer"
    """defer: send when the quiet hours end; drop: do not send."""

    @field_validator("from_", "to")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        if not _TIME_OF_DAY.match(value):
            raise ValueError(f"expected a time of day HH:MM such as '21:00', got {value!r}")
        return value


class OnCapped(Strict):
    """What a refused send does: wait for the window to free (until ``expire_after``), skip
    to the step's ``on_suppressed`` / next step, or end the run."""

    action: Literal["defer", "skip", "exit"] = "defer"
    """defer: wait for the window to free; skip: go to on_suppressed / the next step; exit:
    end the run."""
    expire_after: Duration = timedelta(days=2)
    """With defer: give up (skip) after this long, e.g. 2d."""


class Arbitration(Strict):
    """Journeys competing for one person within ``window``: the highest priority sends.

    Every marketing send then waits for the window to close before it is decided (that is the
    added latency); no window (the default) means first come, first served."""

    window: Duration | None = None
    """How long competing sends wait to be decided, e.g. 10m; absent: no arbitration."""


class Experiments(Strict):
    """How experiments are read: no winner is declared before every arm has ``min_sample``
    people."""

    min_sample: int = Field(100, ge=1, le=10_000_000)
    """People every arm needs before a winner is declared (default 100)."""


class Policy(Strict):
    """The contact policy (policy.yaml): the anti-harassment rules every marketing send obeys."""

    timezone: str = Field(
        "Asia/Shanghai", json_schema_extra={"examples": ["Asia/Shanghai", "Europe/Paris", "UTC"]}
    )
    """IANA timezone for people without one, and for segment schedules."""
    window: Literal["rolling", "calendar"] = "rolling"
    """rolling: a cap's window ends now; calendar: whole days in the person's timezone."""
    caps: Caps = Field(default_factory=Caps)
    """{global: [...], channels: {CHANNEL: [...]}, tags: {TAG: [...]}}, each a list of
    {max: N, per: DURATION}."""
    quiet_hours: QuietHours | None = None
    """No marketing in these hours of the person's day: {from: "21:00", to: "09:00"}."""
    on_capped: OnCapped = Field(default_factory=OnCapped)
    """What a send refused by a cap does: {action: defer | skip | exit, expire_after: 2d}."""
    arbitration: Arbitration = Field(default_factory=Arbitration)
    """Journeys competing for one person: {window: 10m}, the highest priority sends."""
    experiments: Experiments = Field(default_factory=Experiments)
    """How experiment verdicts are read: {min_sample: 100} people per arm before a winner."""
    budgets: dict[Slug, Budget] = Field(
        default_factory=dict, json_schema_extra={"additionalProperties": False}
    )
    """Per message category, shared by every journey with that tag, e.g.
    {coupon: {max_sends: 50000, max_value: 200000}}."""

    @model_validator(mode="after")
    def _calendar_windows_are_whole_days(self) -> Policy:
        if self.window == "calendar":
            rules = [*self.caps.global_]
            for group in (*self.caps.channels.values(), *self.caps.tags.values()):
                rules += group
            for rule in rules:
                if rule.per % timedelta(days=1):
                    raise ValueError(
                        f"calendar windows count whole days in the person's timezone; "
                        f"{format_duration(rule.per)} is not a whole number of days"
                    )
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (expected e.g. Asia/Shanghai)") from None
        return value
