"""The example journeys and segments are valid and say what the scenarios ask for."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from engine.dsl.loader import load_document, load_journey, load_segment, validate_paths
from engine.dsl.models import EventEntry, Journey, SegmentEntry, SplitStep, WaitStep, WaitUntil
from engine.dsl.segments import Segment
from tests.dsl.helpers import EXAMPLE_JOURNEYS, EXAMPLE_SEGMENTS, EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates(path: Path) -> None:
    assert validate_paths([path]) == []


@pytest.mark.parametrize("path", EXAMPLE_JOURNEYS, ids=lambda p: p.name)
def test_journeys_are_recognised_as_journeys(path: Path) -> None:
    assert isinstance(load_document(path), Journey)


@pytest.mark.parametrize("path", EXAMPLE_SEGMENTS, ids=lambda p: p.name)
def test_segments_are_recognised_as_segments(path: Path) -> None:
    assert isinstance(load_document(path), Segment)


@pytest.mark.parametrize("path", EXAMPLE_JOURNEYS, ids=lambda p: p.name)
def test_a_journey_survives_the_trip_through_json(path: Path) -> None:
    # Runs pin the journey as JSON in their workflow input: it must come back identical.
    journey = load_journey(path)
    again = Journey.model_validate(journey.model_dump(mode="json", by_alias=True))
    assert again == journey
    assert again.content_hash() == journey.content_hash()


def test_cart_recovery_is_the_design_sketch() -> None:
    journey = load_journey(EXAMPLE_JOURNEYS[0])
    assert isinstance(journey.entry, SegmentEntry)
    assert (journey.entry.segment, journey.entry.schedule) == (
        "carted_not_paid_yesterday",
        "0 10 * * *",
    )
    assert journey.reentry.cooldown == timedelta(days=7)
    assert journey.caps[0].max == 1 and journey.caps[0].per == timedelta(days=7)
    assert journey.templates() == {"cart_a", "cart_b", "cart_vip", "cart_last_call"}
    split = journey.step("test")
    assert isinstance(split, SplitStep)
    assert [(v.variant, v.weight) for v in split.split] == [("A", 45), ("B", 45), ("holdout", 10)]


def test_welcome_waits_until_ten_in_the_persons_time() -> None:
    journey = load_journey(EXAMPLE_JOURNEYS[1])
    assert isinstance(journey.entry, EventEntry) and journey.entry.event == "member_registered"
    assert journey.reentry.policy == "once"
    morning = journey.step("morning")
    assert isinstance(morning, WaitStep) and isinstance(morning.wait, WaitUntil)
    assert morning.wait.hour_minute == (10, 0)


def test_winback_holdout_gets_no_message() -> None:
    journey = load_journey(EXAMPLE_JOURNEYS[2])
    split = journey.step("copy_test")
    assert isinstance(split, SplitStep)
    holdout = next(v for v in split.split if v.variant == "holdout")
    assert holdout.goto == "wait_order"
    assert journey.templates() == {"winback_a", "winback_b"}


def test_journeys_name_segments_that_exist() -> None:
    segment_ids = {load_segment(p).id for p in EXAMPLE_SEGMENTS}
    named = {
        j.entry.segment
        for j in map(load_journey, EXAMPLE_JOURNEYS)
        if isinstance(j.entry, SegmentEntry)
    }
    assert named <= segment_ids
