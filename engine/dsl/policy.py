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

A journey adds its own ``caps`` and ``priority``; a send step may override ``on_suppressed``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from engine.dsl.base import Slug, Strict
from engine.dsl.durations import Duration, format_duration

_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
LONGEST_WINDOW = timedelta(days=90)


class CapRule(Strict):
    """At most ``max`` touches ``per`` window (1 minute to 90 days)."""

    max: int = Field(ge=1, le=1000)
    per: Duration

    @field_validator("per")
    @classmethod
    def _window_range(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= LONGEST_WINDOW:
            raise ValueError("a cap window is between 1m and 90d")
        return value


class Caps(Strict):
    global_: list[CapRule] = Field(default_factory=list, alias="global")
    channels: dict[Slug, list[CapRule]] = Field(default_factory=dict)
    tags: dict[Slug, list[CapRule]] = Field(default_factory=dict)


class QuietHours(Strict):
    """No marketing between ``from`` and ``to`` in the person's timezone (may span midnight)."""

    from_: str = Field(alias="from")
    to: str
    action: Literal["defer", "drop"] = "defer"

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
    expire_after: Duration = timedelta(days=2)


class Arbitration(Strict):
    """Journeys competing for one person within ``window``: the highest priority sends.

    Every marketing send then waits for the window to close before it is decided (that is the
    added latency); no window (the default) means first come, first served."""

    window: Duration | None = None


class Experiments(Strict):
    """How experiments are read: no winner is declared before every arm has ``min_sample``
    people."""

    min_sample: int = Field(100, ge=1, le=10_000_000)


class Policy(Strict):
    timezone: str = "Asia/Shanghai"
    window: Literal["rolling", "calendar"] = "rolling"
    caps: Caps = Field(default_factory=Caps)
    quiet_hours: QuietHours | None = None
    on_capped: OnCapped = Field(default_factory=OnCapped)
    arbitration: Arbitration = Field(default_factory=Arbitration)
    experiments: Experiments = Field(default_factory=Experiments)

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
