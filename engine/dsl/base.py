"""The base of every model of the language: frozen, unknown keys refused."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints


class Strict(BaseModel):
    """Frozen and closed: a misspelled key is an error, never silently ignored."""

    # Attribute docstrings become the JSON Schema descriptions (`engine.dsl.schema`): the hover
    # text in an editor is the documentation in the code. Files are read with ``by_name=False``
    # (the loader), so ``else_`` in YAML is a misspelling; Python code may still use the names.
    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, use_attribute_docstrings=True
    )


SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
"""Ids of journeys, steps, segments and templates: lower case, digits, ``-`` and ``_``."""

TIME_OF_DAY = r"^([01]\d|2[0-3]):([0-5]\d)$"
"""A time of day HH:MM, 24 hours ("09:00", "21:30")."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")
AttributeName = Annotated[str, StringConstraints(pattern=_NAME.pattern)]
"""A profile attribute or event name: letters, digits, ``_`` and ``.``."""


# --- JSON Schema fragments for rules across keys (see `engine.dsl.schema`) ----------------------


def given(key: str) -> dict[str, Any]:
    """JSON Schema: ``key`` is present with a value (``key: null`` counts as absent)."""
    return {"required": [key], "properties": {key: {"not": {"type": "null"}}}}


def not_given(*keys: str) -> dict[str, Any]:
    """JSON Schema: none of ``keys`` has a value (absent or null)."""
    return {"properties": {key: {"type": "null"} for key in keys}}


def exactly_one(keys: Iterable[str]) -> dict[str, Any]:
    """JSON Schema: exactly one of ``keys`` has a value."""
    return {"oneOf": [given(key) for key in keys]}
