"""YAML for rules files: line numbers kept for every mapping and key, strict shapes."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from leadgate.errors import RulesetError, did_you_mean
from leadgate.ruleset import Stage


class LineDict(dict[str, Any]):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int = 0
    key_lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    """Safe YAML where only true/false are booleans (so `NO` stays Norway).

    Aliases (`*name`) are refused: a few hundred bytes of nested aliases expand to
    gigabytes, and rules files have no need of them.
    """

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            line = event.start_mark.line + 1
            raise RulesetError("YAML aliases (*name) are not allowed here", line=line)
        return super().compose_node(parent, index)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    None,
)


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise RulesetError(f"keys must be text, got {key!r}", line=line)
        if key in result:
            raise RulesetError(f"key '{key}' appears twice in one mapping", line=line)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)


def parse_yaml(text: str, path: str) -> LineDict:
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except RulesetError as error:
        raise error.located(path=path) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(error, "problem", None) or str(error)
        hint = ""
        if "mapping values are not allowed" in problem:
            hint = "a colon and a space start a new key: quote the value, or write "
            hint += "count(x, within 7d) without the colon"
        raise RulesetError(
            f"not valid YAML: {problem}", path=path, line=line, suggestion=hint
        ) from None
    except RecursionError:
        raise RulesetError("YAML nested too deeply", path=path) from None
    if not isinstance(document, LineDict):
        raise RulesetError("a rules file must be a YAML mapping", path=path, line=1)
    return document


def error_at(
    mapping: LineDict, key: str, message: str, suggestion: str = ""
) -> RulesetError:
    """A RulesetError at the line of a key in a mapping."""
    line = mapping.key_lines.get(key, mapping.line)
    return RulesetError(message, line=line, suggestion=suggestion)


def check_keys(mapping: LineDict, allowed: tuple[str, ...], what: str) -> None:
    """Refuse keys a mapping may not hold, suggesting the closest allowed one."""
    for key in mapping:
        if key not in allowed:
            hint = did_you_mean(key, allowed)
            if "(" in key or ")" in key:
                hint = "a comma inside {...} ends a value: put the condition in quotes"
            raise error_at(mapping, key, f"unknown key '{key}' in {what}", hint)


def required_text(mapping: LineDict, key: str) -> str:
    """The non-empty text under a key, or an error at its line."""
    value = mapping.get(key)
    if not isinstance(value, str) or not value.strip():
        raise error_at(mapping, key, f"'{key}' is required and must be text")
    return value.strip()


def child_mapping(parent: LineDict, key: str) -> LineDict:
    """The mapping under a key (empty when absent), or an error at its line."""
    value = parent.get(key)
    if value is None:
        empty = LineDict()
        empty.line, empty.key_lines = parent.key_lines.get(key, parent.line), {}
        return empty
    if not isinstance(value, LineDict):
        raise error_at(parent, key, f"'{key}' must be a mapping")
    return value


def read_points(mapping: LineDict, key: str) -> Decimal:
    """A finite decimal number under a key, or an error at its line."""
    value = mapping[key]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise error_at(mapping, key, f"'{key}' must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise error_at(mapping, key, f"'{key}' must be a number") from None
    if not number.is_finite() or abs(number) > 10**9:
        raise error_at(mapping, key, f"'{key}' must be a finite number under 10^9")
    return number


def read_stage(mapping: LineDict, key: str, value: object) -> Stage:
    """A stage name (any case), or an error with the closest stage name."""
    names = [s.name for s in Stage]
    if not isinstance(value, str) or value.upper() not in names:
        hint = did_you_mean(str(value).upper(), names)
        raise error_at(mapping, key, f"a stage is one of {names}", hint)
    return Stage[value.upper()]
