"""The schedule Temporal runs is the cron the journey file says, read the classic way.

Each schedule is created on the dev server from `engine.dsl.cron`'s calendars, and the next
times the server plans are compared with croniter's reading of the same text (cron(5): a
restricted day of month OR a restricted day of week), in the policy's timezone.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from temporalio.client import Schedule, ScheduleActionStartWorkflow, ScheduleSpec
from temporalio.testing import WorkflowEnvironment

from engine.dsl.cron import parse_cron
from engine.services.schedules import calendar_specs

pytestmark = pytest.mark.timeout(300)

TZ = "Asia/Shanghai"
START = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)  # between minutes: no time equals it
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _part(low: int, high: int, names: list[str] | None, first: int) -> st.SearchStrategy[str]:
    def word(n: int, named: bool) -> str:
        return names[n - first] if named and names and 0 <= n - first < len(names) else str(n)

    value = st.integers(low, high)
    named = st.booleans() if names else st.just(False)
    step = st.integers(1, max(1, (high - low) // 2))
    single = st.builds(word, value, named)
    # Ends differ: croniter (the reference) reads a range like 2-2 as "*".
    span = (
        st.tuples(value, value, named)
        .filter(lambda t: t[0] != t[1])
        .map(lambda t: f"{word(min(t[0], t[1]), t[2])}-{word(max(t[0], t[1]), t[2])}")
    )
    return st.one_of(
        st.just("*"),
        single,
        span,
        st.builds("*/{}".format, step),
        st.tuples(span, step).map(lambda t: f"{t[0]}/{t[1]}"),
    )


def _field(
    low: int, high: int, names: list[str] | None = None, first: int = 0
) -> st.SearchStrategy[str]:
    part = _part(low, high, names, first)
    return st.one_of(st.just("*"), st.lists(part, min_size=1, max_size=3).map(",".join))


CRONS = st.builds(
    " ".join,
    st.tuples(
        _field(0, 59),
        _field(0, 23),
        _field(1, 28),  # every month has these: a cron that never fires is refused, not run
        _field(1, 12, MONTHS, 1),
        _field(0, 7, DAYS, 0),
    ),
)


async def _planned(env: WorkflowEnvironment, cron: str) -> list[datetime]:
    handle = await env.client.create_schedule(
        f"cron-{uuid.uuid4().hex[:8]}",
        Schedule(
            action=ScheduleActionStartWorkflow("Nothing", id="nothing", task_queue="nowhere"),
            spec=ScheduleSpec(calendars=calendar_specs(cron), time_zone_name=TZ, start_at=START),
        ),
    )
    try:
        return list((await handle.describe()).info.next_action_times[:5])
    finally:
        await handle.delete()


def _classic(cron: str, count: int) -> list[datetime]:
    it = croniter(cron, START.astimezone(ZoneInfo(TZ)))
    return [it.get_next(datetime).astimezone(UTC) for _ in range(count)]


@pytest.mark.parametrize(
    "cron",
    ["0 10 * * *", "0 10 1 * mon", "*/15 9-17 * jan,mar sun", "5/15 * * * *", "0 10 13 * 5"],
)
async def test_temporal_fires_when_the_classic_reading_says(
    dev_env: WorkflowEnvironment, cron: str
) -> None:
    planned = await _planned(dev_env, cron)
    assert planned == _classic(cron, len(planned))
    assert len(planned) == 5


@settings(
    max_examples=60,
    deadline=timedelta(seconds=30),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cron=CRONS)
async def test_any_accepted_cron_runs_as_it_reads(dev_env: WorkflowEnvironment, cron: str) -> None:
    try:
        parse_cron(cron)
    except ValueError:
        reject()  # refused with a reason (tests/dsl/test_cron.py): nothing to schedule
    planned = await _planned(dev_env, cron)
    assert planned, cron
    assert planned == _classic(cron, len(planned)), cron
