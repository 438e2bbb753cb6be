"""Name resolution and type checking for conditions: what each name in a rule means."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from leadgate.errors import LeadInputError, RulesetError, did_you_mean
from leadgate.expression import Count, Literal, Name, Window
from leadgate.ruleset import RulesetSource
from leadgate.schema import FactSpec, Kind, Value


@dataclass(frozen=True)
class AttributeRef:
    """An attribute of the lead; `key` is its property in the engine's lead fact."""

    spec: FactSpec

    @property
    def key(self) -> str:
        return f"a_{self.spec.name}"

    @property
    def kind(self) -> Kind:
        return self.spec.type.kind

    @property
    def label(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class CountRef:
    """A count of activities in a window, worked out before the engine runs."""

    key: str
    activity: str
    window: Window | None
    kind: Kind = Kind.NUMBER

    @property
    def label(self) -> str:
        within = f", within: {self.window.text}" if self.window else ""
        return f"count({self.activity}{within})"


@dataclass(frozen=True)
class DerivedRef:
    """A fact that rules derive; it lives in the engine as its own fact."""

    name: str
    kind: Kind

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True)
class ScoreRef:
    """A final score: the total or one category, read from the engine's score fact."""

    category: str  # "total" or a category name
    kind: Kind = Kind.NUMBER

    @property
    def key(self) -> str:
        return "total" if self.category == "total" else f"c_{self.category}"

    @property
    def label(self) -> str:
        return f"score.{self.category}"


Ref = AttributeRef | CountRef | DerivedRef | ScoreRef


@dataclass
class Scope:
    """What names mean in one ruleset: attributes, derived facts, scores, lists."""

    source: RulesetSource
    derived: Mapping[str, Kind]
    categories: frozenset[str]
    counts: dict[tuple[str, Window | None], CountRef] = field(default_factory=dict)

    @classmethod
    def of(cls, source: RulesetSource) -> Scope:
        """Build the scope, checking derived facts against the schema."""
        derived: dict[str, Kind] = {}
        for rule in source.rules:
            for name, value in rule.then.derive.items():
                kind = kind_of(value)
                _check_derived(source, rule.id, name, kind, derived.get(name))
                derived[name] = kind
        categories = {c for rule in source.rules for c in rule.then.score}
        for category in source.caps:
            if category not in categories:
                raise RulesetError(f"score cap for '{category}', which no rule scores")
        return cls(source, derived, frozenset(categories))

    def resolve(self, name: Name) -> Ref:
        """Resolve a fact name, or raise with a suggestion."""
        readable = self.source.schema.readable
        if name.name in readable:
            return AttributeRef(readable[name.name])
        if name.name in self.derived:
            return DerivedRef(name.name, self.derived[name.name])
        if name.name.startswith("score."):
            category = name.name.removeprefix("score.")
            if category == "total" or category in self.categories:
                return ScoreRef(category)
            hint = did_you_mean(category, ["total", *self.categories])
            raise RulesetError(f"no rule scores '{category}'", suggestion=hint)
        known = [*readable, *self.derived, "score.total"]
        known += [f"score.{c}" for c in self.categories]
        hint = did_you_mean(name.name, known)
        raise RulesetError(f"unknown fact '{name.name}'", suggestion=hint)

    def resolve_derived(self, name: str) -> DerivedRef:
        """The derived fact a `derive:` action writes."""
        return DerivedRef(name, self.derived[name])

    def count(self, node: Count) -> CountRef:
        """The count a `count(...)` call stands for, shared by equal calls."""
        declared = self.source.schema.activities
        if node.activity != "any" and node.activity not in declared:
            hint = did_you_mean(node.activity, [*declared, "any"])
            raise RulesetError(
                f"undeclared activity type '{node.activity}'", suggestion=hint
            )
        slot = (node.activity, node.window)
        if slot not in self.counts:
            self.counts[slot] = CountRef(
                f"n{len(self.counts)}", node.activity, node.window
            )
        return self.counts[slot]

    def list_items(self, name: Name) -> tuple[Value, ...]:
        """The items of a named list."""
        if name.name not in self.source.lists:
            hint = did_you_mean(name.name, self.source.lists)
            raise RulesetError(f"unknown list '{name.name}'", suggestion=hint)
        return self.source.lists[name.name]


def engine_value(value: Value) -> Value:
    """A derived value as the engine holds it: text as a digest, numbers as floats.

    The engine's own string handling mismatches escaped characters (a backslash, a
    tab), so text never reaches it: equal texts give equal digests.
    """
    if isinstance(value, str):
        return "v" + hashlib.blake2b(value.encode(), digest_size=12).hexdigest()
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def kind_of(value: Value | Decimal) -> Kind:
    """The kind of a constant."""
    if isinstance(value, bool):
        return Kind.BOOLEAN
    if isinstance(value, str):
        return Kind.STRING
    return Kind.NUMBER


def constant_for(ref: Ref, literal: Literal | Value) -> Value:
    """Check a constant against the fact it is compared with, and clean it alike."""
    value = literal.value if isinstance(literal, Literal) else literal
    if isinstance(value, Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if kind_of(value) is not ref.kind:
        raise RulesetError(
            f"'{ref.label}' is {ref.kind.value} but {value!r} is {kind_of(value).value}"
        )
    if isinstance(ref, AttributeRef):
        try:
            return ref.spec.constant(value, ref.label)
        except LeadInputError as error:
            message = f"constant {value!r} for {error.field}: {error.problem}"
            raise RulesetError(message) from None
    if isinstance(value, str):
        return value.casefold()
    return value


def _check_derived(
    source: RulesetSource, rule_id: str, name: str, kind: Kind, before: Kind | None
) -> None:
    if name in source.schema.readable:
        message = f"derives '{name}', which is an attribute of the schema"
        raise RulesetError(message, rule_id=rule_id)
    if before is not None and before is not kind:
        message = f"derives '{name}' as {kind.value}, elsewhere as {before.value}"
        raise RulesetError(message, rule_id=rule_id)
