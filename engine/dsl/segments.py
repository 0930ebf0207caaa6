"""A segment file (``journeys/segments/*.yaml``): a named condition over profiles.

    id: dormant_60_120
    name: Dormant 60-120 days
    condition: {attribute: days_since_last_order, between: [60, 120]}

A journey with ``entry: {segment: dormant_60_120}`` enters the members of the segment each time its
schedule fires; the condition is compiled to SQL for that and evaluated in Python for one person.
"""

from __future__ import annotations

from pydantic import Field

from engine.dsl.base import Slug, Strict
from engine.dsl.conditions import Condition


class Segment(Strict):
    """One segment; ``id`` is what journeys name in ``entry.segment``."""

    id: Slug
    """The segment's id, e.g. dormant_60_120; journeys name it in entry.segment."""
    name: str = Field(min_length=1, max_length=200)
    """A readable name."""
    description: str = ""
    """Who is in it, and why."""
    condition: Condition
    """Who belongs: a condition, e.g. {lifecycle: dormant} or {all: [..., ...]}."""
