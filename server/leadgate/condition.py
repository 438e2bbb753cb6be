"""Compiling one condition into engine patterns: lead tests, derived-fact joins, scores.

Text comparisons, list membership and pattern matches run in Python before the engine
(the engine's string and regex semantics differ from the rule language's); they reach
the engine as booleans on the lead fact. Numbers, counts, derived facts and scores are
matched by the engine itself, which also does the chaining.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import regex

from leadgate.errors import RuleDefectError, RulesetError
from leadgate.expression import (
    Arithmetic,
    Compare,
    Count,
    Literal,
    Logic,
    Matches,
    Member,
    Name,
    Negative,
    Node,
    Not,
    Presence,
)
from leadgate.schema import Kind, Value
from leadgate.scope import (
    AttributeRef,
    CountRef,
    DerivedRef,
    Ref,
    Scope,
    ScoreRef,
    constant_for,
    engine_value,
)

Json = dict[str, Any]
Check = Callable[[Mapping[str, Value]], bool]
FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
COMPLEMENT = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
ENGINE_OP = {"!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
ARITHMETIC = {"+": "$add", "-": "$sub", "*": "$mul", "/": "$div"}
MAX_GROUPS = 16
FOLD: dict[str, Callable[[Any, Any], Decimal]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}
# Seconds one pattern may take on one value. Matching releases the GIL, so a slow
# pattern stalls only its own call; the limit is wall time, so it leaves room for a
# busy machine.
MATCH_TIMEOUT = 1.0


@dataclass(frozen=True)
class DerivedTest:
    """A join on a derived fact; `negated` means no such fact may exist."""

    name: str
    test: Json | None
    negated: bool


@dataclass
class Group:
    """One conjunction of a condition in disjunctive form: one engine rule group."""

    lead: list[Json] = field(default_factory=list)
    derived: list[DerivedTest] = field(default_factory=list)
    score: list[Json] = field(default_factory=list)

    def merged(self, other: Group) -> Group:
        return Group(
            self.lead + other.lead,
            self.derived + other.derived,
            self.score + other.score,
        )


@dataclass
class Checks:
    """The Python-side tests of a ruleset, shared by equal signature."""

    functions: dict[str, Check] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def add(self, signature: str, check: Check) -> str:
        if signature not in self.keys:
            key = f"x{len(self.keys)}"
            self.keys[signature] = key
            self.functions[key] = check
        return self.keys[signature]


@dataclass
class ConditionCompiler:
    """Turns one rule's condition into groups, and records what it reads."""

    scope: Scope
    checks: Checks
    reads: dict[str, Ref] = field(default_factory=dict)
    valued: set[str] = field(default_factory=set)  # read for a value, not presence

    def groups(self, node: Node) -> list[Group]:
        """The condition in disjunctive form, negations pushed to the atoms."""
        groups = self._dnf(node, negate=False)
        if len(groups) > MAX_GROUPS:
            raise RulesetError(
                f"condition expands to {len(groups)} alternatives; at most {MAX_GROUPS}"
            )
        return groups

    def _dnf(self, node: Node, negate: bool) -> list[Group]:
        if isinstance(node, Not):
            return self._dnf(node.operand, not negate)
        if isinstance(node, Logic):
            conjunction = (node.op == "and") != negate
            parts = [self._dnf(operand, negate) for operand in node.operands]
            if not conjunction:
                return [group for part in parts for group in part]
            combined = [Group()]
            for part in parts:
                combined = [a.merged(b) for a in combined for b in part]
                if len(combined) > MAX_GROUPS:
                    raise RulesetError("condition has too many alternatives")
            return combined
        return [self._atom(node, negate)]

    def _atom(self, node: Node, negate: bool) -> Group:
        if isinstance(node, Presence):
            ref = self._ref(node.name, valued=False)
            return self._presence(ref, node.present != negate)
        if isinstance(node, Name):
            return self._flag(self._ref(node), negate)
        if isinstance(node, Compare):
            return self._compare(node, negate)
        if isinstance(node, Member):
            return self._member(node, negate)
        if isinstance(node, Matches):
            return self._matches(node, negate)
        if isinstance(node, Literal) and isinstance(node.value, bool):
            if node.value == negate:
                raise RulesetError("this condition can never be true")
            return Group()  # always: the rule matches every lead
        raise RulesetError("expected a condition, found a bare value")

    def _ref(self, name: Name, *, valued: bool = True) -> Ref:
        ref = self.scope.resolve(name)
        self.reads[ref.label] = ref
        if valued:
            self.valued.add(ref.label)
        return ref

    def _presence(self, ref: Ref, present: bool) -> Group:
        if isinstance(ref, DerivedRef):
            return Group(derived=[DerivedTest(ref.name, None, negated=not present)])
        if not isinstance(ref, AttributeRef):
            raise RulesetError(f"'{ref.label}' is always present")
        return Group(lead=[{"$ex" if present else "$nex": {ref.key: 1}}])

    def _flag(self, ref: Ref, negate: bool) -> Group:
        if ref.kind is not Kind.BOOLEAN:
            raise RulesetError(
                f"'{ref.label}' is {ref.kind.value}; compare it with a value"
            )
        if isinstance(ref, DerivedRef):
            return Group(derived=[DerivedTest(ref.name, {"value": True}, negate)])
        assert isinstance(ref, AttributeRef)
        if negate:
            return Group(lead=[{"$or": [{"$nex": {ref.key: 1}}, {ref.key: False}]}])
        return Group(lead=[{ref.key: True}])

    def _compare(self, node: Compare, negate: bool) -> Group:
        left, right = (
            self._operand(node.left, node.right),
            self._operand(node.right, node.left),
        )
        refs = [r for r in (*_refs(left), *_refs(right))]
        if not refs:
            raise RulesetError("a comparison needs at least one fact")
        literals = {_literal_kind(x) for x in (left, right)}
        kinds = {r.kind for r in refs} | {k for k in literals if k is not None}
        if len(kinds) > 1:
            raise RulesetError(
                "compares values of different kinds: "
                + " and ".join(sorted(k.value for k in kinds))
            )
        kind = kinds.pop()
        if kind is not Kind.NUMBER and node.op not in ("==", "!="):
            raise RulesetError(
                f"'{node.op}' orders numbers only; these are {kind.value}"
            )
        if kind is Kind.STRING:
            return self._text_compare(node.op, left, right, negate)
        return self._engine_compare(node.op, left, right, negate)

    def _operand(self, node: Node, other: Node) -> Any:
        """Resolve an operand to refs, constants or arithmetic over them."""
        if isinstance(node, Name):
            try:
                return self._ref(node)
            except RulesetError:
                if _may_be_constant(other, self.scope):
                    return Literal(node.pos, node.name)
                raise
        if isinstance(node, Count):
            ref = self.scope.count(node)
            self.reads[ref.label] = ref
            return ref
        if isinstance(node, Literal):
            return node
        if isinstance(node, Arithmetic | Negative):
            return self._arithmetic(node)
        raise RulesetError("a comparison needs values on both sides, not a condition")

    def _arithmetic(self, node: Node) -> Any:
        """Arithmetic over facts; constant parts are folded here, exactly.

        The engine gets arithmetic on constants alone wrong, so none reaches it.
        """
        if isinstance(node, Negative):
            inner = self._arithmetic(node.operand)
            if isinstance(inner, Literal) and isinstance(inner.value, Decimal):
                return Literal(node.pos, -inner.value)
            return ("*", Literal(node.pos, Decimal(-1)), inner)
        if isinstance(node, Arithmetic):
            left, right = self._arithmetic(node.left), self._arithmetic(node.right)
            if node.op == "/" and not (isinstance(right, Literal) and right.value != 0):
                raise RulesetError("divide only by a non-zero number constant")
            if isinstance(left, Literal) and isinstance(right, Literal):
                return Literal(node.pos, FOLD[node.op](left.value, right.value))
            return (node.op, left, right)
        operand = self._operand(node, node)
        if _literal_kind(operand) not in (Kind.NUMBER, None) or (
            not isinstance(operand, Literal) and operand.kind is not Kind.NUMBER
        ):
            raise RulesetError("arithmetic works on numbers and counts only")
        if isinstance(operand, DerivedRef):
            raise RulesetError(
                "compare a derived fact with a constant, not in arithmetic"
            )
        return operand

    def _text_compare(self, op: str, left: Any, right: Any, negate: bool) -> Group:
        if isinstance(left, Literal):
            left, right = right, left
        if isinstance(left, DerivedRef):
            if not isinstance(right, Literal):
                raise RulesetError("compare a derived fact with a constant")
            value = engine_value(constant_for(left, right))
            test = {"value": value} if op == "==" else {"$neq": {"value": value}}
            return Group(derived=[DerivedTest(left.name, test, negate)])
        if not isinstance(left, AttributeRef) or isinstance(right, DerivedRef):
            raise RulesetError(
                "text can be compared with attributes and constants only"
            )
        equal = op == "=="
        if isinstance(right, Literal):
            constant = constant_for(left, right)
            name = left.spec.name
            key = self.checks.add(
                f"{name}{op}{constant!r}",
                lambda v: name in v and (v[name] == constant) == equal,
            )
        else:
            a, b = left.spec.name, right.spec.name
            key = self.checks.add(
                f"{a}{op}{b}", lambda v: a in v and b in v and (v[a] == v[b]) == equal
            )
        return Group(lead=[{key: not negate}])

    def _engine_compare(self, op: str, left: Any, right: Any, negate: bool) -> Group:
        derived = [r for r in (left, right) if isinstance(r, DerivedRef)]
        if derived:
            return self._derived_compare(op, left, right, negate)
        scores = [r for r in (*_refs(left), *_refs(right)) if isinstance(r, ScoreRef)]
        if scores and len(scores) != len(_refs(left)) + len(_refs(right)):
            raise RulesetError("compare scores with scores and constants only")
        if isinstance(left, Literal) and isinstance(right, Literal):
            raise RulesetError("compares two constants")
        if not isinstance(left, AttributeRef | CountRef | ScoreRef):
            if isinstance(right, AttributeRef | CountRef | ScoreRef):
                left, right, op = right, left, FLIP[op]
            else:  # both sides are arithmetic: test 0 op (left - right) on "k0"
                left, right = "k0", ("-", right, left)
        final_op = COMPLEMENT[op] if negate else op
        key = left if isinstance(left, str) else left.key
        test = _engine_test(final_op, key, _expression(right))
        if scores:
            return Group(score=[test])
        guards = [
            r.key for r in (*_refs(left), *_refs(right)) if isinstance(r, AttributeRef)
        ]
        if negate:
            return Group(lead=[{"$or": [*({"$nex": {g: 1}} for g in guards), test]}])
        return Group(lead=[*({"$ex": {g: 1}} for g in guards), test])

    def _derived_compare(self, op: str, left: Any, right: Any, negate: bool) -> Group:
        if isinstance(left, Literal):
            left, right, op = right, left, FLIP[op]
        if not isinstance(left, DerivedRef) or not isinstance(right, Literal):
            raise RulesetError("compare a derived fact with a constant")
        value = engine_value(constant_for(left, right))
        return Group(
            derived=[DerivedTest(left.name, _engine_test(op, "value", value), negate)]
        )

    def _member(self, node: Member, negate: bool) -> Group:
        """`x in L` and `x not in L` are both false for a missing x."""
        if not isinstance(node.item, Name):
            raise RulesetError("'in' tests a fact, e.g. country in [US, CA]")
        ref = self._ref(node.item)
        if isinstance(node.items, Name):
            items = self.scope.list_items(node.items)
        else:
            items = tuple(_as_value(item.value) for item in node.items)
        constants = frozenset(constant_for(ref, item) for item in items)
        if isinstance(ref, DerivedRef):
            ordered = sorted((engine_value(c) for c in constants), key=repr)
            if node.negated:
                test: Json = {"$and": [{"$neq": {"value": c}} for c in ordered]}
            else:
                test = {"$or": [{"value": c} for c in ordered]}
            return Group(derived=[DerivedTest(ref.name, test, negate)])
        if not isinstance(ref, AttributeRef):
            raise RulesetError(f"'{ref.label}' cannot be tested with 'in'")
        name = ref.spec.name
        signature = f"{name} in {sorted(constants, key=repr)!r}"
        key = self.checks.add(signature, lambda v: name in v and v[name] in constants)
        if not node.negated:
            return Group(lead=[{key: not negate}])
        if negate:
            return Group(lead=[{"$or": [{"$nex": {ref.key: 1}}, {key: True}]}])
        return Group(lead=[{"$ex": {ref.key: 1}}, {key: False}])

    def _matches(self, node: Matches, negate: bool) -> Group:
        if not isinstance(node.subject, Name):
            raise RulesetError("'matches' tests a text fact")
        ref = self._ref(node.subject)
        if not isinstance(ref, AttributeRef) or ref.kind is not Kind.STRING:
            raise RulesetError(
                f"'matches' tests text attributes; '{ref.label}' is not one"
            )
        pattern = _compile_pattern(node.pattern, folded=ref.spec.folds_case)
        name = ref.spec.name
        key = self.checks.add(
            f"{name} matches {node.pattern!r}",
            lambda v: (
                name in v and _search(pattern, str(v[name]), f"attributes.{name}")
            ),
        )
        return Group(lead=[{key: not negate}])


def _search(pattern: regex.Pattern[str], text: str, field: str) -> bool:
    """Search with a time limit: Python-style patterns can backtrack for ever."""
    try:
        return pattern.search(text, timeout=MATCH_TIMEOUT) is not None
    except TimeoutError:
        raise RuleDefectError(
            f"pattern {pattern.pattern!r} took over {MATCH_TIMEOUT * 1000:.0f} ms "
            f"on {field}; simplify it"
        ) from None


def _compile_pattern(text: str, *, folded: bool) -> regex.Pattern[str]:
    """Compile with re's syntax; on a case-folded fact, match without regard to case.

    The value was case-folded, so `VP|Chief` or `[A-Z]+` could otherwise never match
    it; full case folding also lets `ß` match the `ss` that folding made of it.
    """
    flags = regex.IGNORECASE | regex.FULLCASE if folded else 0
    try:
        return regex.compile(text, flags)
    except regex.error as error:
        raise RulesetError(f"invalid regular expression {text!r}: {error}") from None


def _as_value(value: object) -> Value:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    assert isinstance(value, str | int | float | bool)
    return value


def _may_be_constant(other: Node, scope: Scope) -> bool:
    if not isinstance(other, Name):
        return False
    try:
        return scope.resolve(other).kind is Kind.STRING
    except RulesetError:
        return False


def _literal_kind(operand: Any) -> Kind | None:
    if not isinstance(operand, Literal):
        return None
    if isinstance(operand.value, bool):
        return Kind.BOOLEAN
    return Kind.STRING if isinstance(operand.value, str) else Kind.NUMBER


def _refs(operand: Any) -> list[Ref]:
    if isinstance(operand, tuple):
        return _refs(operand[1]) + _refs(operand[2])
    if isinstance(operand, AttributeRef | CountRef | DerivedRef | ScoreRef):
        return [operand]
    return []


def _expression(operand: Any) -> Any:
    if isinstance(operand, tuple):
        op, left, right = operand
        return {ARITHMETIC[op]: {"$l": _expression(left), "$r": _expression(right)}}
    if isinstance(operand, Literal):
        # A float keeps the engine's arithmetic in floating point: with two whole
        # numbers it divides as integers and overflows at 64 bits.
        value = operand.value
        return float(value) if isinstance(value, Decimal) else value
    return {"$m": operand.key}


def _engine_test(op: str, key: str, value: Any) -> Json:
    if op == "==":
        return {key: value}
    return {ENGINE_OP[op]: {key: value}}
