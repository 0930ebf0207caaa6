"""JSON Schemas of the files a marketer edits, for editors' completion, hover text and checks.

    journey schema --kind segment           # print one
    journey schema --write schemas          # write all, print the VS Code `yaml.schemas` mapping

and at the top of a file::

    # yaml-language-server: $schema=../schemas/journey.schema.json

The schemas are generated from the pydantic models, so the hover text is the models' docstrings
and a rule that spans keys (exactly one operator, ``cooldown`` only with ``policy: after``) is
declared on the model next to the validator that enforces it (``json_schema_extra``). A schema
accepts what `journey validate` accepts, except for the rules listed in `BEYOND_SCHEMA`; for
those `journey validate` stays the judge (tests/dsl/test_schema_agreement.py holds the two to
agreeing on every example file and on a set of wrong ones).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine.dsl.models import Journey
from engine.dsl.policy import Policy
from engine.dsl.segments import Segment
from engine.dsl.tiers import Tiers

DIALECT = "https://json-schema.org/draft/2020-12/schema"

MODELS: dict[str, type[BaseModel]] = {
    "journey": Journey,
    "segment": Segment,
    "policy": Policy,
    "tiers": Tiers,
}
"""The file kinds `journey validate` reads with a model, by kind name."""

BEYOND_SCHEMA: tuple[str, ...] = (
    "graph rules of a journey: step ids unique, every target exists, every step reachable, no "
    "loop without a wait, the weights of a split sum to 100",
    "a branch's else is its last case",
    "a cron schedule's fields are in range (the schema checks there are five)",
    "a timezone is a known IANA name",
    "duration ranges: an event window at most 3660d; a policy cap window 1m to 90d; with "
    "window: calendar, whole days; lifecycle active_within at most dormant_within",
    "tier ids are unique and a tier's condition names no tier",
    "a number written with a decimal point where a whole number is required (60.0 for recency)",
    "a template's Jinja syntax and the names it uses (checked by `journey validate`)",
)
"""What `journey validate` checks and JSON Schema cannot express; the README lists these too."""


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) of one kind of file (`MODELS`), keys as written in YAML."""
    model = MODELS[kind]
    # Validation mode: the schema of what a person may write (defaults optional, aliases used).
    body = model.model_json_schema(by_alias=True, mode="validation")
    return with_head(kind, model.__name__, body)


def journey_json_schema() -> dict[str, Any]:
    """The JSON Schema of a journey file."""
    return json_schema("journey")


def segment_json_schema() -> dict[str, Any]:
    """The JSON Schema of a segment file (``segments/*.yaml``)."""
    return json_schema("segment")


def with_head(kind: str, title: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with ``$schema``, ``$id`` and ``title`` first, as editors show them."""
    head = {"$schema": DIALECT, "$id": f"urn:journey-engine:schema:{kind}", "title": title}
    return head | {k: v for k, v in body.items() if k not in head}


def template_json_schema() -> dict[str, Any]:
    """The JSON Schema of a message template (``templates/*.yaml``), as `engine.templates` reads
    it: content fields of Jinja2 text (mappings nest: ``params: {name: ...}`` is the field
    ``params.name``) and ``locales`` of variants that replace some fields."""

    def text(description: str, *examples: str) -> dict[str, Any]:
        return {"type": "string", "description": description, "examples": list(examples)}

    field = {"$ref": "#/$defs/Field"}
    fields = {"$ref": "#/$defs/Fields"}
    known = {
        "subject": text("Email subject (Jinja2).", "{{ profile.first_name }}, your cart"),
        "text": text(
            "Plain text: the email text part, the SMS or WeCom message (Jinja2).",
            "Hello {{ profile.first_name | default('friend') }}",
        ),
        "html": text("Email HTML part (Jinja2; inserted values are escaped).", "<p>Hello</p>"),
        "template_code": text("SMS provider's approved template code.", "SMS_CART_B"),
        "params": fields | {"description": "SMS template parameters: name -> text (Jinja2)."},
        "miniprogram": fields | {"description": "WeCom mini-program card: title, appid, page."},
        "title": text("Push notification title (Jinja2)."),
        "body": text("Push notification body (Jinja2)."),
        "data": fields | {"description": "Push data: key -> text (Jinja2)."},
    }
    body: dict[str, Any] = {
        "description": (
            "A message template: content fields of Jinja2 text, and locale variants. Which fields "
            "a channel needs (email subject and text or html; sms text or template_code; wecom "
            "text or miniprogram.title; push body) is checked at deploy."
        ),
        "type": "object",
        "properties": {
            **known,
            "locales": {
                "type": "object",
                "description": (
                    "Variants by the person's locale (en, zh-TW ...): the fields a variant gives "
                    "replace the default's, the others are inherited."
                ),
                "propertyNames": {"minLength": 1, "pattern": "^[^@]*$"},
                "additionalProperties": fields,
            },
        },
        "propertyNames": {"minLength": 1},
        "additionalProperties": field,
        # At least one text field outside `locales` (an empty template sends nothing).
        "not": {
            "properties": {"locales": True},
            "additionalProperties": {"not": {"$ref": "#/$defs/HasText"}},
        },
        "$defs": {
            "Field": {
                "description": "A content field: Jinja2 text, or a mapping of fields.",
                "anyOf": [{"type": "string"}, fields],
            },
            "Fields": {
                "description": "Content fields: name -> Jinja2 text (or a nested mapping).",
                "type": "object",
                "propertyNames": {"minLength": 1},
                "additionalProperties": field,
            },
            "HasText": {
                "description": "Text, or a mapping with text somewhere inside.",
                "anyOf": [
                    {"type": "string"},
                    {
                        "type": "object",
                        "not": {"additionalProperties": {"not": {"$ref": "#/$defs/HasText"}}},
                    },
                ],
            },
        },
    }
    return with_head("template", "Template", body)


KINDS: tuple[str, ...] = (*MODELS, "template")
"""Every kind of file with a schema."""

FILES: dict[str, tuple[str, ...]] = {
    "journey": ("journeys/*.yaml", "!journeys/policy.yaml", "!journeys/tiers.yaml"),
    "segment": ("journeys/segments/*.yaml",),
    "policy": ("journeys/policy.yaml",),
    "tiers": ("journeys/tiers.yaml",),
    "template": ("journeys/templates/*.yaml",),
}
"""Where each kind lives in a project laid out like this repository (globs for editors)."""


def any_json_schema(kind: str) -> dict[str, Any]:
    """The schema of ``kind``, one of `KINDS`."""
    return template_json_schema() if kind == "template" else json_schema(kind)


def file_name(kind: str) -> str:
    return f"{kind}.schema.json"


def write_schemas(directory: Path) -> dict[str, list[str]]:
    """Write every kind's schema into ``directory`` (created if need be), as
    ``<kind>.schema.json``; return the VS Code ``yaml.schemas`` mapping (schema path -> globs)."""
    directory.mkdir(parents=True, exist_ok=True)
    mapping: dict[str, list[str]] = {}
    for kind in KINDS:
        path = directory / file_name(kind)
        path.write_text(schema_text(kind), encoding="utf-8")
        mapping[path.as_posix()] = list(FILES[kind])
    return mapping


def schema_text(kind: str) -> str:
    """The schema of ``kind`` as written to its file (stable: committed files are compared)."""
    return json.dumps(any_json_schema(kind), indent=2, ensure_ascii=False) + "\n"
