"""Message templates: a YAML file per template, one Jinja2 source per content field.

    # journeys/templates/cart_a.yaml
    text: "{{ profile.first_name | default('朋友') }}，你的购物车还在等你"

Rendering runs in a sandboxed environment with strict undefined, so a template cannot reach Python
internals and a missing field is an error instead of an empty string. Templates are read and
compiled at deploy time (syntax errors surface then, with the file and line) and stored with the
journey version, so a run renders exactly what was deployed with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from engine.domain import Profile

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class TemplateError(Exception):
    """A template that cannot be read, compiled or rendered; the message names file and line."""


def load_templates(directory: Path, names: set[str]) -> dict[str, dict[str, str]]:
    """Read and compile the named templates from ``directory``; every problem at once."""
    found: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for name in sorted(names):
        path = directory / f"{name}.yaml"
        if not path.is_file():
            problems.append(f"{path}: template '{name}' not found")
            continue
        try:
            data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
        except YAMLError as exc:
            problems.append(f"{path}: {exc}")
            continue
        if (
            not isinstance(data, dict)
            or not data
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items())
        ):
            problems.append(f"{path}: expected a mapping of content field to template text")
            continue
        for field, source in data.items():
            try:
                _ENV.parse(source)
            except TemplateSyntaxError as exc:
                problems.append(f"{path}: field '{field}' line {exc.lineno}: {exc.message}")
        found[name] = dict(data)
    if problems:
        raise TemplateError("\n".join(problems))
    return found


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    return _ENV.from_string(source)


def render(
    template: Mapping[str, str], profile: Profile, extra: Mapping[str, Any]
) -> dict[str, str]:
    """Render every content field of ``template`` for ``profile``.

    The context is ``profile`` (its attributes, plus ``id``, ``tags``, ``timezone``, ``locale``) and
    ``extra`` (journey and step ids). Raises TemplateError naming the field.
    """
    context = {
        "profile": {
            **profile.attributes,
            "id": profile.id,
            "tags": sorted(profile.tags),
            "timezone": profile.timezone,
            "locale": profile.locale,
        },
        **extra,
    }
    content: dict[str, str] = {}
    for field, source in template.items():
        try:
            content[field] = _compiled(source).render(context)
        except Exception as exc:  # jinja raises many types; all mean "this template is wrong"
            raise TemplateError(f"field '{field}': {exc}") from exc
    return content
