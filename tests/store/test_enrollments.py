from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.domain import Enrollment, EnrollmentEnd
from engine.store import EnrollmentNotFound, Store

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _enrollment(eid: str, entered: datetime, profile_id: str = "p1") -> Enrollment:
    return Enrollment(eid, "cart", 1, profile_id, entered)


async def test_last_enrollment_is_the_most_recent_entry(store: Store) -> None:
    assert await store.last_enrollment("cart", "p1") is None
    second = _enrollment("e2", T0 + timedelta(days=8))
    for e in (_enrollment("e1", T0), second, _enrollment("e3", T0 + timedelta(days=9), "p2")):
        await store.create_enrollment(e)

    assert await store.last_enrollment("cart", "p1") == second
    assert await store.get_enrollment("e1") == _enrollment("e1", T0)
    assert [e.id for e in await store.enrollments("cart")] == ["e1", "e2", "e3"]
    assert await store.enrollments("other") == []


async def test_finishing_twice_is_harmless_and_the_first_finish_wins(store: Store) -> None:
    await store.create_enrollment(_enrollment("e1", T0))
    finish = {
        "status": "converted",
        "ended_at": T0 + timedelta(days=1),
        "exit_step": "wait_pay",
        "path": ["pause", "test", "copy_a", "wait_pay"],
        "variants": {"test": "A"},
        "exit_reason": "order_paid",
    }

    await store.finish_enrollment("e1", **finish)  # type: ignore[arg-type]
    await store.finish_enrollment("e1", **finish)  # type: ignore[arg-type]
    await store.finish_enrollment(
        "e1",
        status="completed",
        ended_at=T0 + timedelta(days=2),
        exit_step="done",
        path=[],
        variants={},
    )

    assert await store.get_enrollment("e1") == Enrollment(
        "e1",
        "cart",
        1,
        "p1",
        T0,
        status="converted",
        ended_at=T0 + timedelta(days=1),
        exit_step="wait_pay",
        exit_reason="order_paid",
        path=("pause", "test", "copy_a", "wait_pay"),
        variants={"test": "A"},
    )


async def test_a_persons_enrollments_across_journeys_oldest_first(store: Store) -> None:
    await store.create_enrollment(_enrollment("e2", T0 + timedelta(days=1)))
    await store.create_enrollment(Enrollment("e1", "welcome", 1, "p1", T0))
    await store.create_enrollment(_enrollment("e3", T0, profile_id="p2"))

    assert [e.id for e in await store.person_enrollments("p1")] == ["e1", "e2"]
    assert [e.id for e in await store.person_enrollments("p1", "cart")] == ["e2"]


async def test_finishing_an_unknown_enrollment_raises(store: Store) -> None:
    with pytest.raises(EnrollmentNotFound):
        await store.finish_enrollment(
            "nope", status="exited", ended_at=T0, exit_step=None, path=[], variants={}
        )


async def test_a_batch_of_endings_is_written_together_and_says_which_ids_exist(
    store: Store,
) -> None:
    for eid in ("e1", "e2", "e3"):
        await store.create_enrollment(_enrollment(eid, T0, profile_id=eid))
    await store.finish_enrollment(
        "e3", status="exited", ended_at=T0, exit_step="wait", path=["wait"], variants={}
    )
    day = T0 + timedelta(days=1)

    found = await store.finish_enrollments(
        [
            EnrollmentEnd("e1", "completed", day, "done", ("wait", "send", "done"), {"ab": "B"}),
            EnrollmentEnd("gone", "completed", day, "done", ()),
            EnrollmentEnd("e2", "converted", day, "wait", ("wait",), exit_reason="order_paid"),
            # The same run again in the same batch, and a run already ended: first finish wins.
            EnrollmentEnd("e1", "stopped", day, "send", ("wait", "send")),
            EnrollmentEnd("e3", "completed", day, "done", ("wait", "send", "done")),
        ]
    )

    assert found == [True, False, True, True, True]
    ended = {e.id: e for e in await store.enrollments("cart")}
    assert (ended["e1"].status, ended["e1"].path, ended["e1"].variants) == (
        "completed",
        ("wait", "send", "done"),
        {"ab": "B"},
    )
    assert (ended["e2"].status, ended["e2"].exit_reason) == ("converted", "order_paid")
    assert (ended["e3"].status, ended["e3"].ended_at) == ("exited", T0)
    assert await store.get_enrollment("gone") is None


async def test_a_batch_with_a_bad_ending_writes_none_of_it(store: Store) -> None:
    await store.create_enrollment(_enrollment("e1", T0))

    with pytest.raises(ValueError, match="naive"):
        await store.finish_enrollments(
            [
                EnrollmentEnd("e1", "completed", T0, "done", ()),
                EnrollmentEnd("e1", "completed", datetime(2026, 11, 21), "done", ()),
            ]
        )

    assert (await store.get_enrollment("e1")) == _enrollment("e1", T0)


async def test_a_deleted_enrollment_is_gone(store: Store) -> None:
    await store.create_enrollment(_enrollment("e1", T0))

    await store.delete_enrollment("e1")
    await store.delete_enrollment("e1")

    assert await store.get_enrollment("e1") is None
    assert await store.last_enrollment("cart", "p1") is None


async def test_live_runs_count_the_active_runs_of_every_deployed_journey(store: Store) -> None:
    for journey_id in ("cart", "idle"):
        await store.deploy_version(journey_id, journey_id, {}, {}, "", T0)
    for eid, profile_id in (("e1", "p1"), ("e2", "p2"), ("e3", "p3")):
        await store.create_enrollment(_enrollment(eid, T0, profile_id))
    await store.finish_enrollment(
        "e3",
        status="completed",
        ended_at=T0 + timedelta(days=1),
        exit_step="done",
        path=[],
        variants={},
    )

    assert await store.live_runs() == {"cart": 2, "idle": 0}
