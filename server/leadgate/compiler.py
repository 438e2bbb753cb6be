"""Compiling a ruleset version: conditions to engine rules, strata, buckets and checks.

The compiled definition keeps inside the engine's measured limits: every pattern starts
with a type test (`t`), so the engine's own session fact never matches; lead patterns
are spread over bucket facts so that no fact can match more than BUCKET alpha tests at
once; and each stratum ends with a low-priority rule that always fires, so every
session runs at least one action before it is deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leadgate.condition import (
    Check,
    Checks,
    ConditionCompiler,
    DerivedTest,
    Group,
    Json,
)
from leadgate.errors import RulesetError
from leadgate.expression import parse
from leadgate.ruleset import RulesetSource, RuleSpec
from leadgate.schema import Value
from leadgate.scope import AttributeRef, CountRef, Ref, Scope, constant_for
from leadgate.strata import Dependencies, stratify

BUCKET = 40
MAX_RULES = 1000
MAX_FACT_PROPERTIES = 200
ADVANCE_PRIORITY = 1000


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to run: its engine name, action and what it reads."""

    spec: RuleSpec
    engine_name: str
    reads: tuple[Ref, ...]
    derive: Mapping[str, Value]


@dataclass(frozen=True)
class Program:
    """A compiled ruleset version: the engine definition and the Python-side work."""

    source: RulesetSource
    rules: tuple[CompiledRule, ...]
    by_engine_name: Mapping[str, CompiledRule]
    definition: Mapping[str, Any]
    checks: Mapping[str, Check]
    counts: tuple[CountRef, ...]
    buckets: tuple[tuple[str, ...], ...]  # the lead-fact keys each bucket carries
    strata: int
    categories: frozenset[str]
    attribute_readers: Mapping[str, tuple[str, ...]]

    def rule_id(self, engine_name: str) -> str:
        """The rule id behind an engine rule name, for messages."""
        rule = self.by_engine_name.get(engine_name)
        return rule.spec.id if rule else f"(end of stratum {engine_name[7:]})"

    def smoke_facts(self) -> list[dict[str, Any]]:
        """Facts for a bare evaluation, used to try a definition before it serves."""
        facts: list[dict[str, Any]] = [{"t": "phase", "id": "p0", "n": 0}]
        facts += [
            {"t": "lead", "id": f"l{b}", "b": b} for b in range(len(self.buckets))
        ]
        return facts


def compile_ruleset(source: RulesetSource) -> Program:
    """Compile a ruleset version, raising RulesetError naming the rule at fault."""
    try:
        return _compile(source)
    except RulesetError as error:
        lines = {rule.id: rule.line for rule in source.rules}
        line = lines.get(error.rule_id, 0)
        raise error.located(path=source.path, line=line) from None


def _compile(source: RulesetSource) -> Program:
    if len(source.rules) > MAX_RULES:
        raise RulesetError(f"{len(source.rules)} rules; at most {MAX_RULES}")
    scope = Scope.of(source)
    checks = Checks()
    parsed = [_compile_rule(rule, scope, checks) for rule in source.rules]
    strata = stratify([deps for _, _, deps in parsed])
    rules, definition, buckets = _definition(source, parsed, strata)
    _check_derived_tests(parsed)
    readers: dict[str, list[str]] = {}
    for spec, body, _ in parsed:
        for name in body.wants:
            readers.setdefault(source.schema.source_of(name), []).append(spec.id)
    return Program(
        source=source,
        rules=tuple(rules),
        by_engine_name={rule.engine_name: rule for rule in rules},
        definition=definition,
        checks=dict(checks.functions),
        counts=tuple(scope.counts.values()),
        buckets=buckets,
        strata=max(strata.values(), default=0) + 1,
        categories=scope.categories,
        attribute_readers={name: tuple(ids) for name, ids in readers.items()},
    )


ParsedRule = tuple[RuleSpec, "RuleBody", Dependencies]


@dataclass(frozen=True)
class RuleBody:
    groups: list[Group]
    reads: tuple[Ref, ...]
    derive: Mapping[str, Value]
    wants: tuple[str, ...]  # attributes whose value the rule reads (not exists/missing)


def _compile_rule(rule: RuleSpec, scope: Scope, checks: Checks) -> ParsedRule:
    try:
        compiler = ConditionCompiler(scope, checks)
        groups = compiler.groups(parse(rule.when))
        derive = {
            name: constant_for(scope.resolve_derived(name), value)
            for name, value in rule.then.derive.items()
        }
    except RulesetError as error:
        raise error.located(line=rule.when_line, rule_id=rule.id) from None
    derived = [test for group in groups for test in group.derived]
    deps = Dependencies(
        rule_id=rule.id,
        reads=frozenset(t.name for t in derived if not t.negated),
        waits_for=frozenset(t.name for t in derived if t.negated),
        reads_score=any(group.score for group in groups),
        derives=frozenset(rule.then.derive),
        scores=bool(rule.then.score),
    )
    wants = tuple(
        ref.spec.name
        for label, ref in compiler.reads.items()
        if isinstance(ref, AttributeRef) and label in compiler.valued
    )
    body = RuleBody(groups, tuple(compiler.reads.values()), derive, wants)
    return rule, body, deps


def _definition(
    source: RulesetSource, parsed: list[ParsedRule], strata: Mapping[str, int]
) -> tuple[list[CompiledRule], dict[str, Any], tuple[tuple[str, ...], ...]]:
    rules: list[CompiledRule] = []
    definition: dict[str, Any] = {}
    buckets: list[set[str]] = [set()]
    filled = 0
    for index, (spec, body, _) in enumerate(parsed):
        if filled + len(body.groups) > BUCKET:
            buckets.append(set())
            filled = 0
        filled += len(body.groups)
        bucket = len(buckets) - 1
        stratum = strata[spec.id]
        patterns = [_patterns(g, bucket, stratum, buckets[bucket]) for g in body.groups]
        name = f"r{index}"
        definition[name] = _rule_definition(patterns)
        rules.append(CompiledRule(spec, name, body.reads, body.derive))
    for bucket_keys in buckets:
        if len(bucket_keys) > MAX_FACT_PROPERTIES:
            raise RulesetError("rules read too many facts; split the ruleset")
    for stratum in range(max(strata.values(), default=0) + 1):
        phase = {"p": {"$and": [{"t": "phase"}, {"n": stratum}]}}
        definition[f"advance{stratum}"] = {
            "all": [phase],
            "pri": ADVANCE_PRIORITY + stratum,
        }
    return rules, definition, tuple(tuple(sorted(keys)) for keys in buckets)


def _rule_definition(patterns: list[list[Json]]) -> Json:
    """One engine rule; `dist: 0` lets one derived fact meet two tests of a rule.

    By default the engine wants a distinct fact for each pattern, so `p > 1 and
    p < 5` on one derived fact would never match.
    """
    if len(patterns) == 1:
        return {"all": patterns[0], "dist": 0}
    groups = [{f"g{i}$all": group} for i, group in enumerate(patterns)]
    return {"any": groups, "dist": 0}


def _patterns(group: Group, bucket: int, stratum: int, keys: set[str]) -> list[Json]:
    keys.update(_keys(group.lead))
    lead = {"m": {"$and": [{"t": "lead"}, {"b": bucket}, *group.lead]}}
    patterns: list[Json] = [lead]
    if stratum:
        patterns.append({"p": {"$and": [{"t": "phase"}, {"n": stratum}]}})
    if group.score:
        score = [{"t": "score"}, {"n": stratum}, *group.score]
        patterns.append({"s": {"$and": score}})
    for index, (name, negated, tests) in enumerate(_derived_joins(group.derived)):
        alias = f"d{index}$not" if negated else f"d{index}"
        patterns.append({alias: {"$and": [{"t": "derived"}, {"name": name}, *tests]}})
    return patterns


def _derived_joins(
    tests: list[DerivedTest],
) -> list[tuple[str, bool, list[Json]]]:
    """One join per derived fact for the tests that want it, one per negated test.

    Positive tests on one name share a join, so that one value must pass them all:
    with `lvl` derived as 1 and as 5, `lvl > 2 and lvl < 3` does not hold.
    """
    joins: list[tuple[str, bool, list[Json]]] = []
    shared: dict[str, list[Json]] = {}
    for test in tests:
        checks = [test.test] if test.test is not None else []
        if test.negated:
            joins.append((test.name, True, checks))
        elif test.name in shared:
            shared[test.name].extend(checks)
        else:
            shared[test.name] = checks
            joins.append((test.name, False, shared[test.name]))
    return joins


def _keys(tests: list[Json]) -> set[str]:
    """The lead-fact properties a list of engine tests reads."""
    found: set[str] = set()
    for test in tests:
        for op, body in test.items():
            if op in ("$and", "$or"):
                found |= _keys(body)
            elif op.startswith("$") and isinstance(body, dict):
                found |= {k for k in body if not k.startswith("$")}
                found |= _operand_keys(body)
            else:
                found.add(op)
    return found


def _operand_keys(body: Any) -> set[str]:
    if isinstance(body, dict):
        found = {body["$m"]} if "$m" in body else set()
        for value in body.values():
            found |= _operand_keys(value)
        return found
    return set()


def _check_derived_tests(parsed: list[ParsedRule]) -> None:
    """Keep the tests on one derived fact under what one engine node can hold."""
    per_name: dict[str, set[str]] = {}
    for spec, body, _ in parsed:
        for group in body.groups:
            for test in group.derived:
                per_name.setdefault(test.name, set()).add(repr(test.test))
                if len(per_name[test.name]) > BUCKET:
                    message = f"more than {BUCKET} different tests of '{test.name}'"
                    raise RulesetError(message, line=spec.when_line, rule_id=spec.id)
