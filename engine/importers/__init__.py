"""Bringing customer history into the store: the CDNOW purchase data set, and events as JSONL.

Imports are history: events are stored as already delivered (they wake no journey), and every
event id is deterministic or given, so importing a file twice changes nothing. Errors::

    ImportProblems(Exception)   nothing was imported; ``problems`` lists "file:line: why"
"""

from __future__ import annotations

from engine.importers.errors import ImportProblems

__all__ = ["ImportProblems"]
