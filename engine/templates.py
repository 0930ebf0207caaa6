"""Message templates: a YAML file per template, one Jinja2 source per content field.

    # journeys/templates/cart_last_call.yaml
    subject: "{{ profile.first_name | default('朋友') }}，购物车即将清空"
    text: "您加购的商品明天将从购物车移除。"
    html: "<p>您加购的商品明天将从购物车移除。</p>"
    params:                      # nested mappings become dotted fields: params.name
      name: "{{ profile.first_name | default('朋友') }}"
    locales:                     # variants by the person's locale; a variant's fields
      en:                        # replace the default's, the others are inherited
        subject: "{{ profile.first_name | default('friend') }}, your cart expires soon"

Fields per channel (checked at deploy for the channels a journey sends the template on):
email ``subject`` + ``text`` and/or ``html``; sms ``text`` or ``template_code`` (+ ``params.*``);
wecom ``text`` or ``miniprogram.*``; push ``body`` (+ ``title``, ``data.*``).

Rendering runs in an immutable sandbox with strict undefined: a template cannot reach Python
internals, a missing field is an error instead of an empty string, and an ``html`` field escapes
what it inserts. The context is ``profile`` (attributes plus ``id``, ``tags``, ``timezone``,
``locale``), ``journey`` (``id``) and ``step`` (``id``); profile values are data, never templates.

Every problem a template has that can be known without a person — syntax, an unknown filter, a
name outside the context, ``journey.``/``step.`` fields that do not exist, access to ``_private``
attributes, missing channel fields — is reported at deploy with the file, line, template and field.

Stored form (with the journey version): ``{name: {field: source}}`` for the default variant plus
``{"name@<locale>": {field: source}}`` per locale variant (merged over the default), so a plain
``templates[name]`` is always the default; :func:`render_message` picks the variant.
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString

from engine.domain import Profile
from engine.dsl.bounded_yaml import load_yaml
from engine.dsl.source import syntax_problem

__all__ = [
    "CHANNEL_FIELDS",
    "CONTEXT_NAMES",
    "TemplateError",
    "check_template_file",
    "load_templates",
    "locale_chain",
    "render",
    "render_message",
    "select_variant",
]

CONTEXT_NAMES: Mapping[str, frozenset[str] | None] = {
    "profile": None,  # attributes vary per person: checked when rendered
    "journey": frozenset({"id"}),
    "step": frozenset({"id"}),
}
"""Top-level names a template may use, with the fields each has (None: any)."""

CHANNEL_FIELDS: Mapping[str, tuple[frozenset[str], tuple[frozenset[str], ...]]] = {
    "email": (frozenset({"subject"}), (frozenset({"text", "html"}),)),
    "sms": (frozenset(), (frozenset({"text", "template_code"}),)),
    "wecom": (frozenset(), (frozenset({"text", "miniprogram.title"}),)),
    "push": (frozenset({"body"}), ()),
}
"""channel -> (fields required, groups of which at least one field is required)."""

_VARIANT_SEP = "@"
_LOCALES_KEY = "locales"
_MAX_SIZE = 100_000  # longest string or sequence a template may build with * or **


class TemplateError(Exception):
    """A template that cannot be read, compiled or rendered; the message names file and line."""


class _Sandbox(ImmutableSandboxedEnvironment):
    """No globals, and no ``'x' * 10**9``: a template cannot exhaust the worker's memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError("exponent too large")
            return operator.pow(left, right)
        sized = [v for v in (left, right) if isinstance(v, str | list | tuple)]
        counts = [v for v in (left, right) if isinstance(v, int)]
        if sized and counts and len(sized[0]) * counts[0] > _MAX_SIZE:
            raise SecurityError("result too large")
        return operator.mul(left, right)


def _environment(autoescape: bool) -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=autoescape)
    env.globals.clear()  # range, cycler, namespace...: not part of a message's context
    return env


_TEXT_ENV = _environment(autoescape=False)
_HTML_ENV = _environment(autoescape=True)


def _is_html(field: str) -> bool:
    return field == "html" or field.endswith((".html", "_html"))


def _env_for(field: str) -> _Sandbox:
    return _HTML_ENV if _is_html(field) else _TEXT_ENV


# --- loading, at deploy -----------------------------------------------------------------------


def load_templates(
    directory: Path,
    names: Collection[str],
    channels: Mapping[str, Collection[str]] | None = None,
) -> dict[str, dict[str, str]]:
    """Read and check the named templates from ``directory``; every problem at once.

    ``channels`` maps a template name to the channels it is sent on, to check their fields.
    Returns the stored form (see the module docstring). Raises TemplateError.
    """
    found: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for name in sorted(names):
        path = directory / f"{name}.yaml"
        if not path.is_file():
            problems.append(f"{path}: template '{name}' not found")
            continue
        found |= _read(path, name, (channels or {}).get(name, ()), problems)
    if problems:
        raise TemplateError("\n".join(problems))
    return found


def check_template_file(path: Path) -> list[str]:
    """Every problem of one template file that can be known without a journey or a person
    (its shape and each field's Jinja), one ``file:line: ...`` line each; empty when fine.

    This is what `journey validate` runs on the files of a ``templates/`` folder; the fields a
    channel needs are checked at deploy, when the journey says which channel sends it.
    """
    problems: list[str] = []
    try:
        _read(path, path.stem, (), problems)
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror}")
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: not UTF-8 text (byte {exc.start})")
    return problems


def _read(
    path: Path, name: str, channels: Collection[str], problems: list[str]
) -> dict[str, dict[str, str]]:
    """The stored form of one template file (see the module docstring); problems appended."""
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except YAMLError as exc:
        problems.append(str(syntax_problem(exc, str(path))))
        return {}
    before = len(problems)
    variants = _variants(path, name, data, problems)
    if len(problems) > before:
        return {}
    found: dict[str, dict[str, str]] = {}
    for variant, fields in variants.items():
        for field, (source, line) in fields.items():
            problems.extend(
                f"{path}:{line + offset}: template '{variant}' field '{field}': {message}"
                for offset, message in check_source(source, field)
            )
        problems.extend(
            f"{path}: template '{variant}': {message}"
            for message in _channel_problems(fields.keys(), channels)
        )
        found[variant] = {field: source for field, (source, _) in fields.items()}
    return found


Located = dict[str, tuple[str, int]]  # field -> (source, 1-based line of its first line)


def _variants(path: Path, name: str, data: Any, problems: list[str]) -> dict[str, Located]:
    expected = "expected a mapping of content field to template text"
    if not isinstance(data, Mapping) or not data:
        problems.append(f"{path}: {expected}")
        return {}
    locales = data.get(_LOCALES_KEY, {})
    variants: dict[str, Located] = {}
    fields = _flatten(path, data, "", problems, skip=_LOCALES_KEY)
    if not fields:
        problems.append(f"{path}: {expected}")
    variants[name] = fields
    if not isinstance(locales, Mapping):
        problems.append(f"{path}: 'locales' must map a locale (e.g. en, zh-TW) to fields")
        return variants
    for locale, overrides in locales.items():
        if not isinstance(locale, str) or not locale or _VARIANT_SEP in locale:
            problems.append(f"{path}: locale {locale!r} is not a locale tag")
            continue
        if not isinstance(overrides, Mapping):
            problems.append(f"{path}: locale '{locale}' must map content fields to text")
            continue
        variant = {**fields, **_flatten(path, overrides, "", problems)}
        variants[f"{name}{_VARIANT_SEP}{_normal(locale)}"] = variant
    return variants


def _flatten(
    path: Path, data: Mapping[Any, Any], prefix: str, problems: list[str], skip: str = ""
) -> Located:
    fields: Located = {}
    for key, value in data.items():
        if skip and key == skip:
            continue
        line = _line(data, key)
        if not isinstance(key, str) or not key:
            problems.append(f"{path}:{line}: field names must be text, not {key!r}")
        elif isinstance(value, Mapping):
            fields.update(_flatten(path, value, f"{prefix}{key}.", problems))
        elif isinstance(value, str):
            # A block scalar's text starts on the line after its indicator.
            block = isinstance(value, LiteralScalarString | FoldedScalarString)
            fields[prefix + key] = (str(value), line + (1 if block else 0))
        else:
            problems.append(f"{path}:{line}: field '{prefix}{key}' must be text")
    return fields


def _line(data: Mapping[Any, Any], key: Any) -> int:
    try:
        return int(data.lc.value(key)[0]) + 1  # type: ignore[attr-defined]
    except (AttributeError, KeyError, TypeError):
        return 1


def check_source(source: str, field: str = "text") -> list[tuple[int, str]]:
    """Problems of one field's source, as (0-based line offset, message); empty when fine."""
    env = _env_for(field)
    try:
        tree = env.parse(source)
        env.compile(tree)  # unknown filters and tests surface here, not in parse
    except TemplateSyntaxError as exc:
        return [((exc.lineno or 1) - 1, exc.message or "syntax error")]
    except JinjaTemplateError as exc:
        return [(0, str(exc))]
    problems: list[tuple[int, str]] = []
    for undeclared in sorted(meta.find_undeclared_variables(tree)):
        if undeclared not in CONTEXT_NAMES:
            line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == undeclared), 1)
            allowed = ", ".join(CONTEXT_NAMES)
            problems.append((line - 1, f"'{undeclared}' is undefined (use one of: {allowed})"))
    for node, attribute in _attributes(tree):
        if attribute.startswith("_"):
            problems.append((node.lineno - 1, f"access to '{attribute}' is not allowed"))
        elif isinstance(node.node, nodes.Name):
            fields = CONTEXT_NAMES.get(node.node.name)
            if fields is not None and attribute not in fields:
                problems.append((node.lineno - 1, f"'{node.node.name}' has no field '{attribute}'"))
    return problems


def _attributes(tree: nodes.Template) -> Iterator[tuple[nodes.Getattr | nodes.Getitem, str]]:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            yield node, node.attr
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            yield node, node.arg.value


def _channel_problems(fields: Collection[str], channels: Collection[str]) -> list[str]:
    problems = []
    for channel in sorted(channels):
        required, groups = CHANNEL_FIELDS.get(channel, (frozenset(), ()))
        missing = sorted(required - set(fields))
        if missing:
            problems.append(f"{channel} needs field(s) {', '.join(missing)}")
        for group in groups:
            if not group & set(fields):
                problems.append(f"{channel} needs one of the fields {', '.join(sorted(group))}")
    return problems


# --- rendering, at send -----------------------------------------------------------------------


def _normal(locale: str) -> str:
    """``zh_cn`` -> ``zh-CN``; ``EN`` -> ``en``."""
    parts = locale.replace("_", "-").split("-")
    rest = (p.upper() if len(p) == 2 else p.title() if len(p) == 4 else p for p in parts[1:])
    return "-".join([parts[0].lower(), *rest])


def locale_chain(locale: str | None) -> list[str]:
    """Locales to try, most specific first: ``zh-Hant-TW`` -> zh-Hant-TW, zh-Hant, zh."""
    if not locale:
        return []
    parts = _normal(locale).split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


def select_variant(
    templates: Mapping[str, Mapping[str, str]], name: str, locale: str | None
) -> Mapping[str, str]:
    """The fields of template ``name`` for ``locale`` (falling back to the default)."""
    for candidate in locale_chain(locale):
        variant = templates.get(f"{name}{_VARIANT_SEP}{candidate}")
        if variant is not None:
            return variant
    try:
        return templates[name]
    except KeyError:
        raise TemplateError(f"template '{name}' is not part of this journey version") from None


@lru_cache(maxsize=4096)
def _compiled(source: str, html: bool) -> Any:
    return (_HTML_ENV if html else _TEXT_ENV).from_string(source)


def render(
    template: Mapping[str, str], profile: Profile, extra: Mapping[str, Any]
) -> dict[str, str]:
    """Render every content field of ``template`` for ``profile``.

    The context is ``profile`` (its attributes, plus ``id``, ``tags``, ``timezone``, ``locale``) and
    ``extra`` (``journey`` and ``step`` ids). Raises TemplateError naming the field.
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
            content[field] = _compiled(source, _is_html(field)).render(context)
        except Exception as exc:  # jinja raises many types; all mean "this template is wrong"
            raise TemplateError(f"field '{field}': {exc}") from exc
    return content


def render_message(
    templates: Mapping[str, Mapping[str, str]],
    name: str,
    profile: Profile,
    extra: Mapping[str, Any],
) -> dict[str, str]:
    """Render template ``name`` of a journey version's ``templates`` in the person's locale.

    The variant is the first of ``profile.locale``'s chain (``zh-TW`` -> ``zh``) that exists,
    else the default. Raises TemplateError (an unknown template, or a field that fails).
    """
    return render(select_variant(templates, name, profile.locale), profile, extra)
