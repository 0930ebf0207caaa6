"""A journey's ``schedule`` is a 5-field cron, read strictly, with the reason for any refusal."""

from __future__ import annotations

import pytest

from engine.dsl.cron import parse_cron
from engine.dsl.errors import DslError
from engine.dsl.loader import parse_journey_text
from engine.dsl.models import Journey, SegmentEntry


def _journey(schedule: str) -> str:
    return (
        f'id: j\nname: J\nentry: {{segment: s, schedule: "{schedule}"}}\n'
        "steps:\n  - {id: done, exit: {}}\n"
    )


def test_a_sixth_field_is_refused_where_it_is_written() -> None:
    # croniter read it as seconds and validated it; Temporal read it as the year and refused.
    with pytest.raises(DslError) as raised:
        parse_journey_text(_journey("0 10 * * * 30"), "j.yaml")
    [problem] = raised.value.problems
    assert (problem.line, problem.column, problem.where) == (3, 31, "entry.schedule")
    assert "expected 5 fields (minute hour day-of-month month day-of-week)" in problem.message
    assert "got 6" in problem.message


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("0 10 * * 1#2", "'1#2' is not a value"),  # Temporal: a comment; croniter: 2nd Monday
        ("0 10 L * *", "day of month must be 1-31, got 'L'"),
        ("0 10 ? * *", "'?' is not a value"),
        ("0 24 * * *", "hour must be 0-23, got '24'"),
        ("0 10 31 2 *", "never fires"),
        ("*/0 * * * *", "a step must be at least 1"),
        ("0 17-9 * * *", "the range runs backwards"),
        ("@every 1h", "unknown shorthand"),
        ("0 10 */2 * 1", "write them without '*'"),
        ("0 0 10 * * * 2027", "got 7"),
        ("", "got 0"),
    ],
)
def test_other_readings_are_refused_with_the_reason(cron: str, reason: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_cron(cron)
    assert reason in str(raised.value)


def test_restricted_day_of_month_and_week_fire_on_either() -> None:
    # cron(5): the 1st of the month OR a Monday; one Temporal calendar would require both.
    first, mondays = parse_cron("0 10 1 * mon").calendars
    assert (first.day_of_month, first.day_of_week) == ((1,), (0, 1, 2, 3, 4, 5, 6))
    assert (mondays.day_of_month, mondays.day_of_week) == (tuple(range(1, 32)), (1,))


def test_names_shorthands_and_sunday_as_7() -> None:
    [calendar] = parse_cron("*/20 9-17/4 * JAN,mar fri-7").calendars
    assert calendar.minute == (0, 20, 40)
    assert calendar.hour == (9, 13, 17)
    assert calendar.month == (1, 3)
    assert calendar.day_of_week == (0, 5, 6)
    assert parse_cron("@daily").calendars == parse_cron("0 0 * * *").calendars


def test_a_stored_schedule_is_read_back_as_it_was_stored() -> None:
    # Runs in flight carry their journey in their input; one an older release accepted must
    # still load (only files being read are held to the strict reading).
    definition = {
        "id": "j",
        "name": "J",
        "entry": {"segment": "s", "schedule": "0 10 * * * 30"},
        "steps": [{"id": "done", "exit": {}}],
    }
    journey = Journey.model_validate(definition)
    assert isinstance(journey.entry, SegmentEntry)
    assert journey.entry.schedule == "0 10 * * * 30"
