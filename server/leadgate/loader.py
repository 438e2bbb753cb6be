"""Reading a rules file: YAML with line numbers into a RulesetSource, shape checked."""

from __future__ import annotations

import hashlib
import pathlib
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from leadgate.errors import RulesetError, did_you_mean
from leadgate.ruleset import (
    Action,
    RulesetSource,
    RuleSpec,
    Stage,
)
from leadgate.schema import FactSpec, FactType, RangeBound, Schema, Value
from leadgate.testcases import read_tests
from leadgate.yamlfile import (
    LineDict,
    check_keys,
    child_mapping,
    error_at,
    parse_yaml,
    read_points,
    read_stage,
    required_text,
)

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
    document = parse_yaml(text, path)
    tests_doc = parse_yaml(tests_text, tests_path) if tests_text is not None else None
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


def _content_hash(document: Mapping[str, Any], tests: Mapping[str, Any] | None) -> str:
    try:
        canonical = orjson.dumps(
            {"ruleset": document, "tests": tests},
            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
            default=str,
        )
    except orjson.JSONEncodeError:
        raise RulesetError("the file holds text that is not valid Unicode") from None
    return hashlib.sha256(canonical).hexdigest()


def _build(
    doc: LineDict, path: str, tests_doc: LineDict | None, tests_path: str
) -> RulesetSource:
    check_keys(doc, TOP_KEYS, "the ruleset")
    name = required_text(doc, "ruleset")
    if not RULESET_NAME.fullmatch(name):
        raise error_at(
            doc, "ruleset", "a ruleset name is lower case letters, digits, _ and -"
        )
    schema = _schema(doc)
    tests = read_tests(doc.get("tests"), doc, path)
    if tests_doc is not None:
        check_keys(tests_doc, ("tests",), "a tests file")
        tests += read_tests(tests_doc.get("tests"), tests_doc, tests_path)
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


def _version(doc: LineDict) -> str:
    value = doc.get("version")
    if isinstance(value, float):
        message = f'write the version in quotes, as "{value}", so YAML keeps it as text'
        raise error_at(doc, "version", message)
    text = str(value) if isinstance(value, int | str) else ""
    if not VERSION.fullmatch(text):
        raise error_at(
            doc, "version", "'version' must be dotted numbers such as 2026.12.0"
        )
    return text


def _schema(doc: LineDict) -> Schema:
    facts: dict[str, FactSpec] = {}
    declared = child_mapping(doc, "facts")
    for name, options in declared.items():
        facts[name] = _fact(declared, name, options)
    activities = doc.get("activities") or []
    if not isinstance(activities, list) or not all(
        isinstance(a, str) and IDENTIFIER.fullmatch(a) and a != "any"
        for a in activities
    ):
        raise error_at(doc, "activities", "'activities' must be a list of identifiers")
    schema = Schema(facts, frozenset(activities))
    for spec in schema.readable.values():
        if spec.name not in facts and spec.name in declared:
            raise error_at(
                declared, spec.name, f"'{spec.name}' is already given by an email"
            )
    return schema


def _fact(declared: LineDict, name: str, options: object) -> FactSpec:
    if not IDENTIFIER.fullmatch(name) or name in RESERVED:
        raise error_at(
            declared, name, f"'{name}' is not a valid fact name (a-z, 0-9, _)"
        )
    if not isinstance(options, LineDict):
        raise error_at(
            declared, name, f"fact '{name}' needs options such as {{type: text}}"
        )
    check_keys(options, ("type", "fold", "ranges"), f"fact '{name}'")
    types = [t.value for t in FactType]
    if options.get("type") not in types:
        hint = did_you_mean(str(options.get("type")), types)
        raise error_at(
            declared, name, f"fact '{name}' type must be one of {types}", hint
        )
    fact_type = FactType(options["type"])
    fold = options.get("fold", False)
    if not isinstance(fold, bool) or (fold and fact_type is not FactType.TEXT):
        raise error_at(declared, name, "'fold' is true or false, and only for text")
    ranges = options.get("ranges", "lower")
    bounds = [b.value for b in RangeBound]
    if ranges not in bounds or (
        "ranges" in options and fact_type is not FactType.COUNT
    ):
        raise error_at(
            declared, name, f"'ranges' is one of {bounds}, and only for count"
        )
    return FactSpec(name, fact_type, fold=fold, ranges=RangeBound(ranges))


def _lists(doc: LineDict) -> dict[str, tuple[Value, ...]]:
    lists: dict[str, tuple[Value, ...]] = {}
    for name, items in child_mapping(doc, "lists").items():
        where = child_mapping(doc, "lists")
        if not IDENTIFIER.fullmatch(name):
            raise error_at(
                where, name, f"'{name}' is not a valid list name (a-z, 0-9, _)"
            )
        if not isinstance(items, list) or not items:
            raise error_at(where, name, f"list '{name}' must be a non-empty YAML list")
        if not all(isinstance(i, str | int | float | bool) for i in items):
            raise error_at(where, name, f"list '{name}' may hold only plain values")
        lists[name] = tuple(items)
    return lists


def _routing(doc: LineDict) -> dict[Stage, str]:
    routing = {Stage.MQL: "marketing", Stage.SQL: "sales"}
    given = child_mapping(doc, "routing")
    for stage_name, owner in given.items():
        stage = read_stage(given, stage_name, stage_name)
        if not isinstance(owner, str):
            raise error_at(given, stage_name, "an owner is text, e.g. sales")
        routing[stage] = owner
    return routing


def _caps(doc: LineDict) -> dict[str, Decimal]:
    scores = child_mapping(doc, "scores")
    check_keys(scores, ("caps",), "scores")
    caps = child_mapping(scores, "caps")
    read = {category: read_points(caps, category) for category in caps}
    for category, cap in read.items():
        if cap < 0:
            message = f"the cap of '{category}' is the most it can give: at least 0"
            raise error_at(caps, category, message)
    return read


def _rules(doc: LineDict) -> tuple[RuleSpec, ...]:
    rules = doc.get("rules")
    if not isinstance(rules, list) or not rules:
        raise error_at(doc, "rules", "'rules' must be a non-empty list")
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
        raise error_at(doc, "rules", "each rule is a mapping with id, when and then")
    rule_id = item.get("id")
    if not isinstance(rule_id, str) or not RULE_ID.fullmatch(rule_id):
        raise RulesetError(
            "a rule needs an 'id' of letters, digits, - _ .", line=item.line
        )
    try:
        check_keys(item, RULE_KEYS, "a rule")
        when = item.get("when")
        if not isinstance(when, str | bool) or (
            isinstance(when, str) and not when.strip()
        ):
            raise error_at(item, "when", "'when' must be a condition")
        then = child_mapping(item, "then")
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
    check_keys(then, ACTION_KEYS, "'then'")
    if not then:
        raise RulesetError("'then' must do something: " + ", ".join(ACTION_KEYS))
    disqualify = then.get("disqualify")
    if disqualify is not None and not isinstance(disqualify, str):
        raise error_at(then, "disqualify", "'disqualify' takes the reason as text")
    recycle = then.get("recycle", False)
    if not isinstance(recycle, bool):
        raise error_at(then, "recycle", "'recycle' is true or false")
    stage = read_stage(then, "stage", then["stage"]) if "stage" in then else None
    if stage is Stage.DISQUALIFIED:
        raise error_at(then, "stage", 'use disqualify: "reason" to disqualify')
    score = child_mapping(then, "score")
    for category in score:
        if not IDENTIFIER.fullmatch(category) or category == "total":
            message = (
                f"'{category}' is not a score category name (a-z, 0-9, _; not total)"
            )
            raise error_at(score, category, message)
    return Action(
        disqualify=disqualify,
        stage=stage,
        score={category: read_points(score, category) for category in score},
        derive=_derive(child_mapping(then, "derive")),
        recycle=recycle,
        reason=str(then.get("reason") or disqualify or ""),
    )


def _derive(derive: LineDict) -> dict[str, Value]:
    facts: dict[str, Value] = {}
    for name, value in derive.items():
        if not IDENTIFIER.fullmatch(name) or name in RESERVED:
            raise error_at(
                derive, name, f"'{name}' is not a valid fact name (a-z, 0-9, _)"
            )
        if isinstance(value, str | int | float | bool) and value != "":
            facts[name] = value
        else:
            raise error_at(derive, name, f"derived fact '{name}' needs a plain value")
    return facts
