"""JSON Schemas of the journey and segment files, for editors' completion and inline checks.

    journey schema --kind journey > .journey/journey.schema.json

and at the top of a journey file::

    # yaml-language-server: $schema=../.journey/journey.schema.json

The schema describes the shape of one file (keys, kinds, durations); the graph rules (targets
exist, no loop without a wait ...) are beyond JSON Schema, so `journey validate` stays the judge.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from engine.dsl.models import Journey
from engine.dsl.segments import Segment

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def journey_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a journey file, as keys are written in YAML."""
    return _schema(Journey, "journey", "Journey", "A journey file of the Journey Engine.")


def segment_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a segment file (``segments/*.yaml``)."""
    return _schema(Segment, "segment", "Segment", "A segment file of the Journey Engine.")


def _schema(model: type[BaseModel], kind: str, title: str, description: str) -> dict[str, Any]:
    # Validation mode: the schema of what a person may write (defaults optional, aliases used).
    body = model.model_json_schema(by_alias=True, mode="validation")
    head = {
        "$schema": _DIALECT,
        "$id": f"urn:journey-engine:schema:{kind}",
        "title": title,
        "description": description,
    }
    return head | {k: v for k, v in body.items() if k not in head}
