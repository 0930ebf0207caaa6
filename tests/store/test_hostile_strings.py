"""Strings an attacker or a careless import might send come back exactly as they went in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.domain import Delivery, Enrollment, Event, Profile
from engine.store import Store

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

# PostgreSQL cannot store NUL (\x00) in text at all, so it is left out on purpose.
HOSTILE = [
    "Robert'); DROP TABLE profiles;--",
    "\" ' ` \\ \\\\ %s %(x)s ? :name $1",
    "张三 🎉 ñ é ü ﷽ \u202eevil\u202c \u200b",
    "line\nbreak\ttab\r\n",
    "' OR '1'='1",
    "x" * 5000 + "'\"" + "字" * 5000,
]


@pytest.mark.parametrize("s", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_strings_round_trip(store: Store, s: str) -> None:
    pid = s[:128]
    profile = Profile(pid, {s: s, "nested": {s: [s]}}, frozenset({s, "plain"}), s[:64], s[:35])
    await store.upsert_profiles([profile])
    assert await store.get_profile(pid) == profile
    assert await store.update_profile(pid, add_tags=[s + "!"]) == await store.get_profile(pid)

    event = Event(s, pid, s, T0, {s: s})
    assert await store.record_event(event) is True
    assert await store.events_for(pid, name=s) == [event]
    assert await store.goal_events(s, [pid]) == {pid: [T0]}

    version, _ = await store.deploy_version(s, s, {s: s}, {s: {s: s}}, s, T0)
    assert await store.get_version(s, 1) == version
    assert (version.definition, version.templates, version.source) == ({s: s}, {s: {s: s}}, s)

    enrollment = Enrollment(s, s, 1, pid, T0, path=(s,), variants={s: s})
    await store.create_enrollment(enrollment)
    assert await store.last_enrollment(s, pid) == enrollment

    delivery = Delivery(
        s,
        s,
        1,
        pid,
        s,
        s,
        s,
        "marketing",
        "failed",
        T0,
        reason=s,
        provider_message_id=s,
        detail={s: s},
    )
    assert await store.record_delivery(delivery) == delivery
    assert await store.deliveries(journey_id=s, profile_id=pid) == [delivery]
