"""The ``schedule`` of a segment-entry journey: a 5-field cron, read once, the way it runs.

    cron = parse_cron("0 10 * * 1-5")     # ValueError with the reason for anything else
    cron.calendars                        # what the Temporal Schedule is given

Tools disagree about cron: croniter reads a sixth field as seconds, Temporal as the year (so
``0 10 * * * 30`` validated, then the server refused it); Temporal ANDs a restricted day of month
with a restricted day of week where cron(5) ORs them, and reads ``#`` as a comment where others
read "the n-th weekday". So the text is parsed here, strictly, and Temporal receives the result as
structured calendars (`Calendar`, all fields must match), never the text.

Accepted: ``minute hour day-of-month month day-of-week``; each field a comma list of ``*``,
``N`` or ``A-B``, each optionally with a step (``*/15``, ``9-17/2``; ``5/15`` runs from 5 to the
field's end); month names ``jan``-``dec``, day names ``sun``-``sat`` (any case); day of week 0-7,
0 and 7 both Sunday. Or one of ``@hourly``, ``@daily`` (``@midnight``), ``@weekly``,
``@monthly``, ``@yearly`` (``@annually``). As in cron(5), when both day fields are restricted
(neither is written ``*``) a day matches if either matches: that is two calendars; a ``*`` in
either of them then (``*/2``) is refused, as tools disagree on it.

Refused, with the reason: another number of fields, ``L W # ?`` and other extensions, values out
of range, a step of 0, ranges that run backwards, and a day of month that none of the months has
(``0 10 31 2 *`` would never fire).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Field = tuple[int, ...]
"""The values a field allows, sorted."""

_SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February of leap years


@dataclass(frozen=True)
class _Spec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    first_name: int = 0  # the value of names[0]


_FIELDS = (
    _Spec("minute", 0, 59),
    _Spec("hour", 0, 23),
    _Spec("day of month", 1, 31),
    _Spec("month", 1, 12, _MONTHS, 1),
    _Spec("day of week", 0, 7, _DAYS, 0),
)
_PART = re.compile(r"^(?:(\*)|(\w+)(?:-(\w+))?)(?:/(\d+))?$")


@dataclass(frozen=True)
class Calendar:
    """One Temporal calendar: a time matches when every field allows it (second is 0)."""

    minute: Field
    hour: Field
    day_of_month: Field
    month: Field
    day_of_week: Field  # 0 = Sunday


@dataclass(frozen=True)
class Cron:
    """A parsed schedule; ``calendars`` fire at the union of their times."""

    text: str
    calendars: tuple[Calendar, ...]


def parse_cron(text: str) -> Cron:
    """Read ``text`` as described in the module docstring; ValueError says what is wrong."""
    written = " ".join(text.split())
    fields = _SHORTHANDS.get(written.lower(), written).split()
    if written.startswith("@") and written.lower() not in _SHORTHANDS:
        raise ValueError(f"unknown shorthand {written!r} (known: {', '.join(_SHORTHANDS)})")
    if len(fields) != 5:
        hint = ""
        if len(fields) in (6, 7):
            hint = (
                "; a sixth field is read as seconds by some tools and as the year by others, "
                "so it is not accepted"
            )
        raise ValueError(
            "expected 5 fields (minute hour day-of-month month day-of-week), e.g. "
            f"'0 10 * * *', got {len(fields)} in {text!r}{hint}"
        )
    minute, hour, dom, month, dow = (
        _field(raw, spec) for raw, spec in zip(fields, _FIELDS, strict=True)
    )
    dow = tuple(sorted({0 if day == 7 else day for day in dow}))
    dom_restricted, dow_restricted = fields[2] != "*", fields[4] != "*"
    if dom_restricted and dow_restricted and "*" in fields[2] + fields[4]:
        # Vixie cron counts "*/2" as unrestricted (AND with the other field), croniter as
        # restricted (OR): a reading nobody can predict is refused.
        raise ValueError(
            f"{text!r}: with both day fields restricted, write them without '*' (cron tools "
            "disagree whether '*/2' restricts the day), e.g. 1-31/2"
        )
    if dom_restricted and not dow_restricted:
        _check_some_day_exists(dom, month, text)
    every_dom, every_dow = _every(_FIELDS[2]), _every(_FIELDS[4])[:-1]
    calendars: tuple[Calendar, ...]
    if dom_restricted and dow_restricted:
        calendars = (
            Calendar(minute, hour, dom, month, every_dow),
            Calendar(minute, hour, every_dom, month, dow),
        )
    else:
        calendars = (Calendar(minute, hour, dom, month, dow),)
    return Cron(text, calendars)


def _field(raw: str, spec: _Spec) -> Field:
    values: set[int] = set()
    for part in raw.split(","):
        match = _PART.match(part)
        if match is None:
            raise ValueError(
                f"{spec.name} {part!r} is not a value, a range A-B or a step */N "
                "(L, W, # and ? are not supported)"
            )
        star, first, last, step_text = match.groups()
        if star:
            start, end = spec.low, spec.high
        else:
            start = _value(first, spec)
            end = _value(last, spec) if last else (spec.high if step_text else start)
        step = int(step_text) if step_text else 1
        if step == 0:
            raise ValueError(f"{spec.name} {part!r}: a step must be at least 1")
        if end < start:
            raise ValueError(f"{spec.name} {part!r}: the range runs backwards")
        values.update(range(start, end + 1, step))
    return tuple(sorted(values))


def _value(token: str, spec: _Spec) -> int:
    if token.lower() in spec.names:
        return spec.names.index(token.lower()) + spec.first_name
    if not token.isdigit() or not spec.low <= int(token) <= spec.high:
        names = f", or {spec.names[0]}-{spec.names[-1]}" if spec.names else ""
        raise ValueError(f"{spec.name} must be {spec.low}-{spec.high}{names}, got {token!r}")
    return int(token)


def _every(spec: _Spec) -> Field:
    return tuple(range(spec.low, spec.high + 1))


def _check_some_day_exists(days: Field, months: Field, text: str) -> None:
    if not any(days[0] <= _DAYS_IN_MONTH[month - 1] for month in months):
        raise ValueError(f"{text!r} never fires: no month it names has day {days[0]}")
