"""The Redis cap service against the reference model (tests/caps/model.py), decision by decision.

Hypothesis draws a policy (global, channel, tag and journey caps; rolling or calendar windows),
a person in some timezone, and a run of sends at random times (not only forward, and often
exactly on a window's edge), retries of earlier send keys and releases. Every answer of
`RedisCapService.reserve` on a real redis-server must match the model's: allowed or not, which
rule, the count, and the retry time to the millisecond.

Times run backwards by at most a day behind a person's latest send; beyond that the service
disagrees (see the last test). Only caps act here: no quiet hours, no arbitration, and a
deferral that never expires, so every refusal is a ``defer`` with the time the window frees.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from engine.caps.checker import CapRequest
from engine.caps.redis_caps import RedisCapService
from engine.caps.rules import ChannelQuota
from engine.dsl.models import Cap
from engine.dsl.policy import Policy
from tests.caps.model import (
    MS_PER_DAY,
    Answer,
    CapModel,
    Send,
    day_start,
    from_ms,
    local_date,
    to_ms,
)
from tests.harness import RedisServer

ZONES = ("UTC", "Asia/Shanghai", "America/New_York", "America/Santiago")
CHANNELS = ("sms", "email", "push")
TAGS = ("promo", "news", "vip")
JOURNEYS = ("welcome", "cart", "winback")
# Starting points next to DST changes (New York spring and autumn, Santiago's changes at
# midnight) and one quiet summer day.
ANCHORS = (
    datetime(2026, 3, 7, 12, 0, tzinfo=UTC),
    datetime(2026, 4, 3, 12, 0, tzinfo=UTC),
    datetime(2026, 6, 15, 3, 0, tzinfo=UTC),
    datetime(2026, 9, 4, 12, 0, tzinfo=UTC),
    datetime(2026, 10, 30, 12, 0, tzinfo=UTC),
    datetime(2026, 1, 31, 14, 0, tzinfo=UTC),  # month and week ends: provider quota periods
)
MINUTE = 60_000
# Times may run backwards by at most this much behind the latest send (see `scenarios`).
BACKWARDS = 7 * MS_PER_DAY  # engine.caps.redis_caps.STRAGGLE

CapList = list[tuple[int, timedelta]]


@dataclass(frozen=True)
class Reserve:
    send: Send


@dataclass(frozen=True)
class Retry:
    pick: int
    """Index (modulo) into the sends so far."""


@dataclass(frozen=True)
class Release:
    pick: int


Op = Reserve | Retry | Release


@dataclass(frozen=True)
class Scenario:
    zone: str
    calendar: bool
    global_caps: CapList
    channel_caps: dict[str, CapList]
    tag_caps: dict[str, CapList]
    journey_caps: dict[str, CapList]
    ops: list[Op]
    quotas: dict[str, tuple[int, str, str | None]] = field(default_factory=dict)
    """Channel -> a provider quota: (max, period, timezone or None for the person's)."""

    def channel_quotas(self) -> dict[str, ChannelQuota]:
        return {
            c: ChannelQuota(max=m, period=period, timezone=zone)  # type: ignore[arg-type]
            for c, (m, period, zone) in self.quotas.items()
        }

    def policy(self) -> Policy:
        def rules(caps: CapList) -> list[dict[str, Any]]:
            return [{"max": m, "per": p} for m, p in caps]

        return Policy.model_validate(
            {
                "timezone": self.zone,
                "window": "calendar" if self.calendar else "rolling",
                "caps": {
                    "global": rules(self.global_caps),
                    "channels": {c: rules(v) for c, v in self.channel_caps.items()},
                    "tags": {t: rules(v) for t, v in self.tag_caps.items()},
                },
                "on_capped": {"action": "defer", "expire_after": "3650d"},
            }
        )

    def model(self) -> CapModel:
        return CapModel(
            zone=ZoneInfo(self.zone),
            calendar=self.calendar,
            global_caps=self.global_caps,
            channel_caps=self.channel_caps,
            tag_caps=self.tag_caps,
            quotas=self.quotas,
        )


def windows(calendar: bool) -> st.SearchStrategy[timedelta]:
    if calendar:
        days = st.one_of(st.sampled_from([1, 2, 7]), st.integers(1, 90))
        return days.map(lambda d: timedelta(days=d))
    common = st.sampled_from([1, 5, 60, 90, 1440, 2160, 7 * 1440, 30 * 1440, 90 * 1440])
    return st.one_of(common, st.integers(1, 90 * 1440)).map(lambda m: timedelta(minutes=m))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    calendar = draw(st.booleans())
    cap = st.tuples(st.integers(1, 5), windows(calendar))
    caps = st.lists(cap, max_size=2)
    global_caps = draw(caps)
    channel_caps = draw(st.dictionaries(st.sampled_from(CHANNELS), caps, max_size=2))
    tag_caps = draw(st.dictionaries(st.sampled_from(TAGS), caps, max_size=2))
    journey_caps = {j: draw(caps) for j in JOURNEYS}
    zone_name = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(zone_name)
    quota = st.tuples(
        st.integers(1, 3),
        st.sampled_from(["day", "week", "month"]),
        st.sampled_from([None, *ZONES]),
    )
    quotas = draw(st.dictionaries(st.sampled_from(CHANNELS), quota, max_size=2))

    # Distances that land exactly on (or one millisecond beside) a window's edge.
    every = [*global_caps, *(c for v in channel_caps.values() for c in v)]
    every += [c for v in (*tag_caps.values(), *journey_caps.values()) for c in v]
    periods = [p // timedelta(milliseconds=1) for _, p in every] or [MS_PER_DAY]

    now = to_ms(draw(st.sampled_from(ANCHORS)))
    latest = now
    sends: list[Send] = []
    ops: list[Op] = []
    for _ in range(draw(st.integers(1, 24))):
        kind = draw(st.sampled_from(["send"] * 6 + ["retry", "release"]))
        if kind == "release" and sends:
            ops.append(Release(draw(st.integers(0, len(sends) - 1))))
            continue
        # A retry of a released key is decided afresh at its own time, so it too must stay
        # within the week that counters keep (a real retry comes seconds later).
        recent = [i for i, s in enumerate(sends) if s.at >= latest - BACKWARDS]
        if kind == "retry" and recent:
            ops.append(Retry(draw(st.sampled_from(recent))))
            continue
        how = draw(st.sampled_from(["step", "edge", "midnight", "same"]))
        if how == "step":
            delta = draw(
                st.one_of(
                    st.sampled_from([0, 1, -1, MINUTE, -MINUTE, 3_600_000, MS_PER_DAY]),
                    st.integers(-MS_PER_DAY, 3 * MS_PER_DAY),
                )
            )
            at = now + delta
        elif how == "edge" and sends:
            base = draw(st.sampled_from(sends)).at
            at = base + draw(st.sampled_from(periods)) + draw(st.sampled_from([-1, 0, 1]))
        elif how == "midnight":
            ahead = draw(st.integers(-1, 3))
            at = day_start(local_date(now, zone) + timedelta(days=ahead), zone)
            at += draw(st.sampled_from([-1, 0, 1]))
        else:
            at = now
        # Workflow times are nearly monotonic, and the service relies on it: RESERVE keeps a
        # counter's reservations for the longest window plus STRAGGLE (a week), so a send more
        # than that behind the person's latest one may miss touches. Keep inside that bound.
        at = max(at, latest - BACKWARDS)
        now, latest = at, max(latest, at)
        journey = draw(st.sampled_from(JOURNEYS))
        send = Send(
            key=f"send-{len(sends)}",
            at=at,
            channel=draw(st.sampled_from(CHANNELS)),
            journey=journey,
            tags=tuple(draw(st.lists(st.sampled_from(TAGS), max_size=2))),
            journey_caps=tuple(journey_caps[journey]),
        )
        sends.append(send)
        ops.append(Reserve(send))
    return Scenario(
        zone_name, calendar, global_caps, channel_caps, tag_caps, journey_caps, ops, quotas
    )


def to_request(send: Send, profile: str, zone: str) -> CapRequest:
    return CapRequest(
        send_key=send.key,
        profile_id=profile,
        journey_id=send.journey,
        channel=send.channel,
        priority=50,
        at=from_ms(send.at),
        timezone=zone,
        journey_caps=tuple(Cap(max=m, per=p) for m, p in send.journey_caps),
        tags=send.tags,
    )


@pytest.fixture(scope="module")
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url)
    yield connection
    await connection.aclose()


async def replay(
    client: aioredis.Redis,
    scenario: Scenario,
    explain: Callable[[str], None] = note,
    record: Callable[[str], None] = event,
) -> None:
    caps = RedisCapService(client, scenario.policy(), scenario.channel_quotas())
    model = scenario.model()
    profile = f"prop-{uuid.uuid4().hex}"  # a fresh key space per example
    sends: list[Send] = []
    for step, op in enumerate(scenario.ops):
        if isinstance(op, Release):
            send = sends[op.pick % len(sends)]
            explain(f"{step}: release {send.key[:6]}")
            await caps.release(send.key, profile)
            model.release(send.key)
            continue
        if isinstance(op, Retry):
            send = sends[op.pick % len(sends)]
        else:
            send = op.send
            sends.append(send)
        expected = model.reserve(send)
        decision = await caps.reserve(to_request(send, profile, scenario.zone))
        explain(f"{step}: {type(op).__name__} {send} -> model {expected}, service {decision}")
        got = Answer(
            allowed=decision.allowed,
            rule=decision.rule,
            count=int(decision.detail["count"]) if "count" in decision.detail else None,
            retry_at=None if decision.retry_at is None else to_ms(decision.retry_at),
        )
        assert got == expected, f"step {step}: service {got} != model {expected}"
        if not decision.allowed:
            assert decision.action == "defer"
            record(f"refused by a {'calendar' if scenario.calendar else 'rolling'} rule")
            record(f"refused by {expected.rule.split(':')[0] if expected.rule else None}")


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
async def test_every_decision_and_retry_time_matches_the_model(
    client: aioredis.Redis, scenario: Scenario
) -> None:
    await replay(client, scenario)


@dataclass(frozen=True)
class Merge:
    """Two ids of one person, ``a`` merged into ``b`` before op number ``at``."""

    scenario: Scenario
    owners: list[str]
    """Whose send each op is before the merge (``a`` or ``b``)."""
    at: int
    stale: list[bool]
    """After the merge (and its first send), ask under the run's own id without the merged
    ids, as a worker that read the store just before the merge commit does."""


@st.composite
def merges(draw: st.DrawFn) -> Merge:
    scenario = draw(scenarios())
    n = len(scenario.ops)
    owners = draw(st.lists(st.sampled_from("ab"), min_size=n, max_size=n))
    stale = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return Merge(scenario, owners, draw(st.integers(0, n)), stale)


async def replay_merge(client: aioredis.Redis, merge: Merge) -> None:
    scenario = merge.scenario
    caps = RedisCapService(client, scenario.policy(), scenario.channel_quotas())
    tag = uuid.uuid4().hex
    ids = {"a": f"merged-{tag}", "b": f"survivor-{tag}"}
    models = {"a": scenario.model(), "b": scenario.model()}
    owner: dict[str, str] = {}
    sends: list[Send] = []
    folded = False
    for step, op in enumerate(scenario.ops):
        merged = step >= merge.at
        if step == merge.at:
            models["b"].absorb(models["a"])
            note(f"{step}: merge a into b")
        if isinstance(op, Release):
            send = sends[op.pick % len(sends)]
            note(f"{step}: release {send.key} as {owner[send.key]}")
            await caps.release(send.key, ids[owner[send.key]])
            models["b" if merged else owner[send.key]].release(send.key)
            continue
        if isinstance(op, Retry):
            send = sends[op.pick % len(sends)]
        else:
            send = op.send
            sends.append(send)
            owner[send.key] = merge.owners[step]
        request = to_request(send, ids[owner[send.key]], scenario.zone)
        if merged and not (folded and merge.stale[step]):
            request = replace(request, profile_id=ids["b"], merged_ids=(ids["a"],))
            folded = True
        model = models["b" if merged else owner[send.key]]
        expected = model.reserve(send)
        decision = await caps.reserve(request)
        note(f"{step}: {send} as {request.profile_id[:6]} -> model {expected}, service {decision}")
        got = Answer(
            allowed=decision.allowed,
            rule=decision.rule,
            count=int(decision.detail["count"]) if "count" in decision.detail else None,
            retry_at=None if decision.retry_at is None else to_ms(decision.retry_at),
        )
        assert got == expected, f"step {step}: service {got} != model {expected}"
    if merge.at < len(scenario.ops):
        event("merged mid-run")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(merge=merges())
async def test_two_ids_merged_mid_run_are_decided_as_one_person_from_the_merge_on(
    client: aioredis.Redis, merge: Merge
) -> None:
    await replay_merge(client, merge)


async def test_a_send_far_behind_the_latest_touch_still_counts_earlier_touches(
    client: aioredis.Redis,
) -> None:
    t0 = to_ms(ANCHORS[2])
    scenario = Scenario(
        zone="UTC",
        calendar=False,
        global_caps=[(2, timedelta(minutes=1))],
        channel_caps={},
        tag_caps={},
        journey_caps={},
        ops=[
            Reserve(Send("a", t0, "sms", "welcome")),
            Reserve(Send("b", t0 + 3 * MS_PER_DAY, "sms", "welcome")),  # three days later
            # Within a minute of "a", and "b" (stamped later) counts too: the model refuses.
            Reserve(Send("c", t0 + 1_000, "sms", "welcome")),
        ],
    )
    await replay(client, scenario, explain=print, record=lambda _: None)
