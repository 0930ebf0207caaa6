"""Reading YAML in bounded time and memory, whoever wrote it.

An alias (``*a``) stands for the whole node its anchor (``&a``) names. Nine aliases of a list of
nine aliases of ... ("billion laughs") make a 20-line file stand for billions of values: ruamel
shares the aliased objects, but everything that walks the data afterwards (`plain`, pydantic)
pays for every expanded copy, and ran out of memory before saying anything.

`load_yaml` counts, while composing, how many values the document holds once every alias is
expanded (an alias costs the size of the node it names, known because that node is complete),
and refuses a document whose count exceeds twice its length in characters (at least
`MIN_BUDGET`): written out, a value takes a character or more, so only aliases cross that line. The
error is a `MarkedYAMLError` at the alias that crossed it, so callers report it like a syntax
error, with line and column. An alias used inside the node it names is refused too, and nesting
deeper than `MAX_DEPTH` (the composer, `plain` and pydantic recurse once per level, and Python's
recursion limit would end them with a traceback). A value the constructor cannot build (``!!int
xyz``, an integer of 5,000 digits) is a `YamlValueError` at that value, not a traceback.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, SequenceNode

MIN_BUDGET = 100_000
"""Expanded values any document may hold, however short (a few megabytes once loaded)."""

MAX_DEPTH = 100
"""Nesting levels a document may have; journeys, conditions and templates need a dozen."""


class YamlRefused(MarkedYAMLError):
    """A document refused for what it holds rather than its syntax.

    ``problem`` is the reason, ``problem_mark`` where it was found.
    """


class YamlTooLarge(YamlRefused):
    """The document is out of proportion to its text (aliases), or nested too deeply."""


class YamlValueError(YamlRefused):
    """A value that cannot be built from its text (``!!int xyz``, a 5,000-digit integer)."""


def load_yaml(text: str) -> Any:
    """``text`` parsed by ruamel's round-trip loader (positions kept), within the bounds above.

    Raises ruamel's ``YAMLError`` for a syntax error and `YamlTooLarge` (one of them) for a
    document that would expand out of proportion to its size.
    """
    return _BoundedYAML(max(MIN_BUDGET, 2 * len(text))).load(text)


class _BoundedYAML(YAML):
    """ruamel's round-trip loader with the counting composer; the composer reads the budget."""

    def __init__(self, budget: int) -> None:
        super().__init__(typ="rt")
        self.Composer = _CountingComposer
        self.Constructor = _GuardedConstructor
        self.expansion_budget = budget


class _CountingComposer(Composer):
    """ruamel's composer, counting the values of the document with its aliases expanded."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self._sizes: dict[int, int] = {}  # id(node) -> expanded size, once the node is complete
        self._total = 0

    def compose_document(self) -> Any:
        self._sizes = {}
        self._total = 0
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            event = self.parser.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is ruamel's error, raised below
                size = self._sizes.get(id(target))
                if size is None:
                    raise YamlTooLarge(
                        None,
                        None,
                        f"alias *{event.anchor} is used inside the node &{event.anchor} it "
                        "names: a recursive alias has no finite value",
                        event.start_mark,
                    )
                self._add(size, f"alias *{event.anchor}", event.start_mark)
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            raise YamlTooLarge(
                None,
                None,
                f"nested more than {MAX_DEPTH} levels deep; refused",
                self.parser.peek_event().start_mark,
            )
        node = super().compose_node(parent, index)
        self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in _children(node))
        self._add(1, "this value", node.start_mark)
        return node

    def _add(self, size: int, what: str, mark: Any) -> None:
        self._total += size
        budget = int(self.loader.expansion_budget)
        if self._total > budget:
            raise YamlTooLarge(
                None,
                None,
                f"{what} makes the document hold more than {budget:,} values once aliases are "
                "expanded, out of proportion to its size; refused (nested anchors and aliases "
                "multiply: write the values out, or use fewer aliases)",
                mark,
            )


class _GuardedConstructor(RoundTripConstructor):
    """ruamel's round-trip constructor; Python's own errors building a value are located."""

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except YAMLError:
            raise
        except (ValueError, TypeError, OverflowError, LookupError, AttributeError) as exc:
            # ruamel's constructors call int(), datetime(), dict lookups ... on text as written.
            reason = str(exc).split("; use sys.")[0]  # Python's advice to the programmer
            raise YamlValueError(
                None, None, f"cannot read this value: {reason}", node.start_mark
            ) from None


def _children(node: Any) -> list[Any]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []
