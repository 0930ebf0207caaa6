"""The base of every model of the language: frozen, unknown keys refused."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints


class Strict(BaseModel):
    """Frozen and closed: a misspelled key is an error, never silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
"""Ids of journeys, steps, segments and templates: lower case, digits, ``-`` and ``_``."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")
AttributeName = Annotated[str, StringConstraints(pattern=_NAME.pattern)]
"""A profile attribute or event name: letters, digits, ``_`` and ``.``."""
