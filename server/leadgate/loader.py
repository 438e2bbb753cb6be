"""Reading a rules file: YAML with line numbers into a RulesetSource, shape checked."""

from __future__ import annotations

import hashlib
import pathlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
import yaml

from leadgate.activity import parse_age
from leadgate.errors import RulesetError, did_you_mean
from leadgate.ruleset import (
    Action,
    ActivityRecord,
    Expectation,
    RulesetSource,
    RuleSpec,
    RuleTest,
    Stage,
)
from leadgate.schema import FactSpec, FactType, RangeBound, Schema, Value

IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,63}")
RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
RULESET_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
VERSION = re.compile(r"\d{1,9}(\.\d{1,9}){0,5}")
TOP_KEYS = (
    "ruleset",
    "version",
    "description",
    "facts",
    "activities",
    "lists",
    "routing",
    "scores",
    "rules",
    "tests",
)
RULE_KEYS = ("id", "description", "when", "then")
ACTION_KEYS = ("disqualify", "stage", "score", "derive", "recycle", "reason")
RESERVED = frozenset({"score", "any", "true", "false", "and", "or", "not", "in"})
MAX_FILE_BYTES = 2 * 1024 * 1024


class LineDict(dict[str, Any]):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int = 0
    key_lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    """Safe YAML where only true/false are booleans (so `NO` stays Norway)."""


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


def load_file(path: pathlib.Path) -> RulesetSource:
    """Read a ruleset file and its sibling `.tests.yaml`, raising RulesetError."""
    sibling = path.with_name(path.name.removesuffix(".yaml") + ".tests.yaml")
    text = _read(path)
    extra = _read(sibling) if sibling.is_file() else None
    return load_text(text, str(path), tests_text=extra, tests_path=str(sibling))


def load_text(
    text: str,
    path: str = "<rules>",
    *,
    tests_text: str | None = None,
    tests_path: str = "",
) -> RulesetSource:
    """Parse ruleset text into a RulesetSource, raising RulesetError located in it."""
    document = _parse_yaml(text, path)
    tests_doc = _parse_yaml(tests_text, tests_path) if tests_text is not None else None
    try:
        return _build(document, path, tests_doc, tests_path)
    except RulesetError as error:
        raise error.located(path=path) from None


def _read(path: pathlib.Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RulesetError(f"cannot read: {error.strerror}", path=str(path)) from None
    if len(data) > MAX_FILE_BYTES:
        raise RulesetError("file larger than 2 MiB", path=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RulesetError("file is not UTF-8 text", path=str(path)) from None


def _parse_yaml(text: str, path: str) -> LineDict:
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except RulesetError as error:
        raise error.located(path=path) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(error, "problem", None) or str(error)
        raise RulesetError(f"not valid YAML: {problem}", path=path, line=line) from None
    if not isinstance(document, LineDict):
        raise RulesetError("a rules file must be a YAML mapping", path=path, line=1)
    return document


def _content_hash(document: Mapping[str, Any], tests: Mapping[str, Any] | None) -> str:
    canonical = orjson.dumps(
        {"ruleset": document, "tests": tests},
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        default=str,
    )
    return hashlib.sha256(canonical).hexdigest()


def _build(
    doc: LineDict, path: str, tests_doc: LineDict | None, tests_path: str
) -> RulesetSource:
    _check_keys(doc, TOP_KEYS, "the ruleset")
    name = _required_text(doc, "ruleset")
    if not RULESET_NAME.fullmatch(name):
        raise _at(
            doc, "ruleset", "a ruleset name is lower case letters, digits, _ and -"
        )
    schema = _schema(doc)
    tests = _tests(doc.get("tests"), doc, path)
    if tests_doc is not None:
        _check_keys(tests_doc, ("tests",), "a tests file")
        tests += _tests(tests_doc.get("tests"), tests_doc, tests_path)
    return RulesetSource(
        name=name,
        version=_version(doc),
        description=str(doc.get("description") or ""),
        schema=schema,
        lists=_lists(doc),
        routing=_routing(doc),
        caps=_caps(doc),
        rules=_rules(doc),
        tests=tests,
        path=path,
        content_hash=_content_hash(doc, tests_doc),
    )


def _at(
    mapping: LineDict, key: str, message: str, suggestion: str = ""
) -> RulesetError:
    line = mapping.key_lines.get(key, mapping.line)
    return RulesetError(message, line=line, suggestion=suggestion)


def _check_keys(mapping: LineDict, allowed: tuple[str, ...], what: str) -> None:
    for key in mapping:
        if key not in allowed:
            hint = did_you_mean(key, allowed)
            if "(" in key or ")" in key:
                hint = "a comma inside {...} ends a value: put the condition in quotes"
            raise _at(mapping, key, f"unknown key '{key}' in {what}", hint)


def _required_text(mapping: LineDict, key: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _at(mapping, key, f"'{key}' is required and must be text")
    return value.strip()


def _mapping(parent: LineDict, key: str) -> LineDict:
    value = parent.get(key)
    if value is None:
        empty = LineDict()
        empty.line, empty.key_lines = parent.key_lines.get(key, parent.line), {}
        return empty
    if not isinstance(value, LineDict):
        raise _at(parent, key, f"'{key}' must be a mapping")
    return value


def _version(doc: LineDict) -> str:
    value = doc.get("version")
    if isinstance(value, float):
        raise _at(doc, "version", 'write the version in quotes, e.g. "1.10"')
    text = str(value) if isinstance(value, int | str) else ""
    if not VERSION.fullmatch(text):
        raise _at(doc, "version", "'version' must be dotted numbers such as 2026.12.0")
    return text


def _schema(doc: LineDict) -> Schema:
    facts: dict[str, FactSpec] = {}
    declared = _mapping(doc, "facts")
    for name, options in declared.items():
        facts[name] = _fact(declared, name, options)
    activities = doc.get("activities") or []
    if not isinstance(activities, list) or not all(
        isinstance(a, str) and IDENTIFIER.fullmatch(a) and a != "any"
        for a in activities
    ):
        raise _at(doc, "activities", "'activities' must be a list of identifiers")
    schema = Schema(facts, frozenset(activities))
    for spec in schema.readable.values():
        if spec.name not in facts and spec.name in declared:
            raise _at(
                declared, spec.name, f"'{spec.name}' is already given by an email"
            )
    return schema


def _fact(declared: LineDict, name: str, options: object) -> FactSpec:
    if not IDENTIFIER.fullmatch(name) or name in RESERVED:
        raise _at(declared, name, f"'{name}' is not a valid fact name (a-z, 0-9, _)")
    if not isinstance(options, LineDict):
        raise _at(declared, name, f"fact '{name}' needs options such as {{type: text}}")
    _check_keys(options, ("type", "fold", "ranges"), f"fact '{name}'")
    types = [t.value for t in FactType]
    if options.get("type") not in types:
        hint = did_you_mean(str(options.get("type")), types)
        raise _at(declared, name, f"fact '{name}' type must be one of {types}", hint)
    fact_type = FactType(options["type"])
    fold = options.get("fold", False)
    if not isinstance(fold, bool) or (fold and fact_type is not FactType.TEXT):
        raise _at(declared, name, "'fold' is true or false, and only for text")
    ranges = options.get("ranges", "lower")
    bounds = [b.value for b in RangeBound]
    if ranges not in bounds or (
        "ranges" in options and fact_type is not FactType.COUNT
    ):
        raise _at(declared, name, f"'ranges' is one of {bounds}, and only for count")
    return FactSpec(name, fact_type, fold=fold, ranges=RangeBound(ranges))


def _lists(doc: LineDict) -> dict[str, tuple[Value, ...]]:
    lists: dict[str, tuple[Value, ...]] = {}
    for name, items in _mapping(doc, "lists").items():
        where = _mapping(doc, "lists")
        if not IDENTIFIER.fullmatch(name):
            raise _at(where, name, f"'{name}' is not a valid list name (a-z, 0-9, _)")
        if not isinstance(items, list) or not items:
            raise _at(where, name, f"list '{name}' must be a non-empty YAML list")
        if not all(isinstance(i, str | int | float | bool) for i in items):
            raise _at(where, name, f"list '{name}' may hold only plain values")
        lists[name] = tuple(items)
    return lists


def _routing(doc: LineDict) -> dict[Stage, str]:
    routing = {Stage.MQL: "marketing", Stage.SQL: "sales"}
    given = _mapping(doc, "routing")
    for stage_name, owner in given.items():
        stage = _stage(given, stage_name, stage_name)
        if not isinstance(owner, str):
            raise _at(given, stage_name, "an owner is text, e.g. sales")
        routing[stage] = owner
    return routing


def _caps(doc: LineDict) -> dict[str, Decimal]:
    scores = _mapping(doc, "scores")
    _check_keys(scores, ("caps",), "scores")
    caps = _mapping(scores, "caps")
    return {category: _points(caps, category) for category in caps}


def _points(mapping: LineDict, key: str) -> Decimal:
    value = mapping[key]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _at(mapping, key, f"'{key}' must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise _at(mapping, key, f"'{key}' must be a number") from None
    if not number.is_finite() or abs(number) > 10**9:
        raise _at(mapping, key, f"'{key}' must be a finite number under 10^9")
    return number


def _stage(mapping: LineDict, key: str, value: object) -> Stage:
    names = [s.name for s in Stage]
    if not isinstance(value, str) or value.upper() not in names:
        hint = did_you_mean(str(value).upper(), names)
        raise _at(mapping, key, f"a stage is one of {names}", hint)
    return Stage[value.upper()]


def _rules(doc: LineDict) -> tuple[RuleSpec, ...]:
    rules = doc.get("rules")
    if not isinstance(rules, list) or not rules:
        raise _at(doc, "rules", "'rules' must be a non-empty list")
    seen: dict[str, int] = {}
    built = []
    for item in rules:
        rule = _rule(item, doc)
        if rule.id in seen:
            message = (
                f"rule id '{rule.id}' is used twice (first at line {seen[rule.id]})"
            )
            raise RulesetError(message, line=rule.line, rule_id=rule.id)
        seen[rule.id] = rule.line
        built.append(rule)
    return tuple(built)


def _rule(item: object, doc: LineDict) -> RuleSpec:
    if not isinstance(item, LineDict):
        raise _at(doc, "rules", "each rule is a mapping with id, when and then")
    rule_id = item.get("id")
    if not isinstance(rule_id, str) or not RULE_ID.fullmatch(rule_id):
        raise RulesetError(
            "a rule needs an 'id' of letters, digits, - _ .", line=item.line
        )
    try:
        _check_keys(item, RULE_KEYS, "a rule")
        when = item.get("when")
        if not isinstance(when, str | bool) or (
            isinstance(when, str) and not when.strip()
        ):
            raise _at(item, "when", "'when' must be a condition")
        then = _mapping(item, "then")
        action = _action(then)
    except RulesetError as error:
        raise error.located(rule_id=rule_id) from None
    return RuleSpec(
        id=rule_id,
        when=str(when).lower() if isinstance(when, bool) else when,
        then=action,
        line=item.line,
        when_line=item.key_lines.get("when", item.line),
        description=str(item.get("description") or ""),
    )


def _action(then: LineDict) -> Action:
    _check_keys(then, ACTION_KEYS, "'then'")
    if not then:
        raise RulesetError("'then' must do something: " + ", ".join(ACTION_KEYS))
    disqualify = then.get("disqualify")
    if disqualify is not None and not isinstance(disqualify, str):
        raise _at(then, "disqualify", "'disqualify' takes the reason as text")
    recycle = then.get("recycle", False)
    if not isinstance(recycle, bool):
        raise _at(then, "recycle", "'recycle' is true or false")
    stage = _stage(then, "stage", then["stage"]) if "stage" in then else None
    if stage is Stage.DISQUALIFIED:
        raise _at(then, "stage", 'use disqualify: "reason" to disqualify')
    score = _mapping(then, "score")
    return Action(
        disqualify=disqualify,
        stage=stage,
        score={category: _points(score, category) for category in score},
        derive=_derive(_mapping(then, "derive")),
        recycle=recycle,
        reason=str(then.get("reason") or disqualify or ""),
    )


def _derive(derive: LineDict) -> dict[str, Value]:
    facts: dict[str, Value] = {}
    for name, value in derive.items():
        if not IDENTIFIER.fullmatch(name) or name in RESERVED:
            raise _at(derive, name, f"'{name}' is not a valid fact name (a-z, 0-9, _)")
        if isinstance(value, str | int | float | bool) and value != "":
            facts[name] = value
        else:
            raise _at(derive, name, f"derived fact '{name}' needs a plain value")
    return facts


def _tests(items: object, doc: LineDict, path: str) -> tuple[RuleTest, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise _at(doc, "tests", "'tests' must be a list of test cases")
    return tuple(_test(item, doc, path) for item in items)


def _test(item: object, doc: LineDict, path: str) -> RuleTest:
    if not isinstance(item, LineDict):
        raise _at(doc, "tests", "each test is a mapping with name, as_of, lead, expect")
    _check_keys(item, ("name", "as_of", "lead", "expect", "prior_stage"), "a test")
    name = _required_text(item, "name")
    try:
        as_of = _timestamp(item.get("as_of"))
        lead = _mapping(item, "lead")
        _check_keys(lead, ("attributes", "activities"), "a test lead")
        activities = tuple(
            _test_activity(a, as_of, lead) for a in lead.get("activities") or []
        )
        prior = item.get("prior_stage")
        return RuleTest(
            name=name,
            as_of=as_of,
            attributes=dict(_mapping(lead, "attributes")),
            activities=activities,
            expect=_expectation(_mapping(item, "expect")),
            line=item.line,
            path=path,
            prior_stage=_stage(item, "prior_stage", prior) if prior else None,
        )
    except RulesetError as error:
        raise RulesetError(
            f"test '{name}': {error.message}", path=path, line=error.line or item.line
        ) from None


def _timestamp(value: object) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise RulesetError(f"'{value}' is not an ISO 8601 time") from None
    if not isinstance(value, datetime):
        raise RulesetError("'as_of' must be a time such as 2026-12-01T12:00:00Z")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _test_activity(item: object, as_of: datetime, lead: LineDict) -> ActivityRecord:
    if not isinstance(item, LineDict):
        raise _at(lead, "activities", "each activity is a mapping with type and ago")
    _check_keys(item, ("type", "ago", "occurred_at", "id"), "an activity")
    if "ago" in item:
        at = as_of - parse_age(str(item["ago"]))
    else:
        at = _timestamp(item.get("occurred_at"))
    return ActivityRecord(str(item.get("type") or ""), at, str(item.get("id") or ""))


def _expectation(expect: LineDict) -> Expectation:
    _check_keys(expect, ("stage", "score", "fired", "not_fired", "derived"), "'expect'")
    score = _mapping(expect, "score")
    for key in ("fired", "not_fired"):
        value = expect.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _at(expect, key, f"'{key}' is a list of rule ids")
    return Expectation(
        stage=_stage(expect, "stage", expect.get("stage")),
        score={category: _points(score, category) for category in score},
        fired=tuple(expect.get("fired", [])),
        not_fired=tuple(expect.get("not_fired", [])),
        derived=dict(_mapping(expect, "derived")),
    )
