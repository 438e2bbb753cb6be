"""The decision: one lead's facts in, stage, scores and explanation out."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from leadgate.activity import Activities, clean_activities
from leadgate.compiler import CompiledRule, Program
from leadgate.engine import EngineRuleset, Fact, FiringLimitError
from leadgate.errors import LeadInputError, RuleDefectError
from leadgate.ruleset import ActivityRecord, Stage
from leadgate.schema import Value
from leadgate.scope import (
    AttributeRef,
    CountRef,
    DerivedRef,
    Ref,
    ScoreRef,
    engine_value,
)

MAX_ATTRIBUTES = 256
Matched = Value | list[Value] | None


@dataclass(frozen=True)
class LeadInput:
    """A lead as a caller sent it, not yet cleaned."""

    lead_id: str
    attributes: Mapping[str, object]
    activities: Sequence[ActivityRecord]
    as_of: datetime
    prior_stage: Stage | None = None


@dataclass(frozen=True)
class Firing:
    """A rule that fired: what it gave and the facts it read."""

    rule_id: str
    points: Mapping[str, Decimal]
    matched: tuple[tuple[str, Matched], ...]
    reason: str
    actions: tuple[str, ...]
    stage: Stage | None = None


@dataclass(frozen=True)
class CategoryScore:
    category: str
    points: Decimal
    uncapped: Decimal


@dataclass(frozen=True)
class DerivedFact:
    name: str
    value: Value
    rule_id: str


@dataclass(frozen=True)
class Decision:
    """Everything decided about one lead, with the ids to reproduce it."""

    lead_id: str
    stage: Stage
    computed_stage: Stage
    owner: str
    scores: tuple[CategoryScore, ...]
    total: Decimal
    reasons: tuple[str, ...]
    fired: tuple[Firing, ...]
    derived: tuple[DerivedFact, ...]
    warnings: tuple[str, ...]
    ruleset: str
    version: str
    content_hash: str
    as_of: datetime
    decision_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def decide(
    program: Program, engine: EngineRuleset, lead: LeadInput, *, max_firings: int
) -> Decision:
    """Clean the lead, run the rules in the engine and resolve the stage."""
    if len(lead.attributes) > MAX_ATTRIBUTES:
        raise LeadInputError("attributes", f"more than {MAX_ATTRIBUTES} attributes")
    values, warnings = program.source.schema.clean(lead.attributes)
    activities = clean_activities(
        lead.activities, program.source.schema.activities, lead.as_of
    )
    counts = {ref.key: _count(activities, ref) for ref in program.counts}
    evaluation = _Evaluation(program, values, counts)

    facts = _facts(program, values, counts)
    try:
        engine.evaluate(facts, evaluation.fire, max_firings=max_firings)
    except FiringLimitError as error:
        raise RuleDefectError(error.describe(program.rule_id)) from None

    warnings += list(activities.warnings) + _missing(program, values)
    return evaluation.decision(lead, tuple(warnings))


def _count(activities: Activities, ref: CountRef) -> int:
    if ref.window is None:
        return activities.count(ref.activity, timedelta(0), None)
    return activities.count(ref.activity, ref.window.min_age, ref.window.max_age)


def _facts(
    program: Program, values: Mapping[str, Value], counts: Mapping[str, int]
) -> list[Fact]:
    """The phase-0 fact and one lead fact per bucket, carrying only what it needs."""
    facts: list[Fact] = [{"t": "phase", "id": "p0", "n": 0}]
    for bucket, keys in enumerate(program.buckets):
        fact: dict[str, Any] = {"t": "lead", "id": f"l{bucket}", "b": bucket}
        for key in keys:
            value = _lead_value(program, key, values, counts)
            if value is not None:
                fact[key] = value
        facts.append(fact)
    return facts


def _lead_value(
    program: Program, key: str, values: Mapping[str, Value], counts: Mapping[str, int]
) -> Value | None:
    # Numbers reach the engine as floats (exact below 2**53, and the schema caps them at
    # 10**15), so its arithmetic never divides as integers or overflows.
    if key.startswith("a_"):
        value = values.get(key[2:])
        return float(value) if type(value) is int else value
    if key.startswith("x"):
        return program.checks[key](values)
    if key == "k0":
        return 0.0
    return float(counts[key])


def _missing(program: Program, values: Mapping[str, Value]) -> list[str]:
    warnings = []
    for name, readers in sorted(program.attribute_readers.items()):
        if name not in values:
            shown = ", ".join(readers[:5]) + (", ..." if len(readers) > 5 else "")
            warnings.append(f"missing attribute '{name}' read by rules: {shown}")
    return warnings


class _Evaluation:
    """What the rules did to one lead, built up as the engine fires them."""

    def __init__(
        self, program: Program, values: Mapping[str, Value], counts: Mapping[str, int]
    ) -> None:
        self.program = program
        self.values = values
        self.counts = counts
        self.fired: list[Firing] = []
        self.fired_ids: set[str] = set()
        self.derived: dict[tuple[str, Value], str] = {}
        self.uncapped: dict[str, Decimal] = {c: Decimal(0) for c in program.categories}
        self.stages: list[Stage] = []
        self.recycle = False

    def fire(self, engine_name: str) -> list[Fact]:
        """Record one activation and return the facts it adds to the session."""
        if engine_name.startswith("advance"):
            return self._advance(int(engine_name.removeprefix("advance")))
        rule = self.program.by_engine_name[engine_name]
        if rule.spec.id in self.fired_ids:
            return []  # a rule fires once per lead, however many ways it matched
        self.fired_ids.add(rule.spec.id)
        self._apply(rule)
        return self._derive(rule)

    def _advance(self, stratum: int) -> list[Fact]:
        following = stratum + 1
        if following >= self.program.strata:
            return []
        capped = self.capped()
        # The nearest float of an exact decimal equals the float of the same constant
        # in a rule, so `score.e == 0.9` still holds after nine 0.1 points.
        scores = {f"c_{c}": float(p) for c, p in capped.items()}
        score = {"t": "score", "id": f"s{following}", "n": following, "k0": 0.0}
        score |= {"total": float(sum(capped.values(), Decimal(0))), **scores}
        return [score, {"t": "phase", "id": f"p{following}", "n": following}]

    def _apply(self, rule: CompiledRule) -> None:
        action = rule.spec.then
        matched = tuple((ref.label, self._read(ref)) for ref in rule.reads)
        for category, points in action.score.items():
            self.uncapped[category] += points
        if action.disqualify is not None:
            self.stages.append(Stage.DISQUALIFIED)
        if action.stage is not None:
            self.stages.append(action.stage)
        self.recycle = self.recycle or action.recycle
        stage = Stage.DISQUALIFIED if action.disqualify is not None else action.stage
        firing = Firing(
            rule.spec.id,
            dict(action.score),
            matched,
            action.reason,
            tuple(action.kinds),
            stage,
        )
        self.fired.append(firing)

    def _derive(self, rule: CompiledRule) -> list[Fact]:
        facts: list[Fact] = []
        for name, value in rule.derive.items():
            if (name, value) not in self.derived:
                self.derived[(name, value)] = rule.spec.id
                index = len(self.derived)
                facts.append(
                    {
                        "t": "derived",
                        "id": f"d{index}",
                        "name": name,
                        "value": engine_value(value),
                    }
                )
        return facts

    def _read(self, ref: Ref) -> Matched:
        if isinstance(ref, AttributeRef):
            return self.values.get(ref.spec.name)
        if isinstance(ref, CountRef):
            return self.counts[ref.key]
        if isinstance(ref, DerivedRef):
            found = [value for (name, value) in self.derived if name == ref.name]
            return found[0] if len(found) == 1 else (found or None)
        assert isinstance(ref, ScoreRef)
        capped = self.capped()
        total = sum(capped.values(), Decimal(0))
        return float(total if ref.category == "total" else capped[ref.category])

    def capped(self) -> dict[str, Decimal]:
        caps = self.program.source.caps
        return {
            c: min(points, caps[c]) if c in caps else points
            for c, points in self.uncapped.items()
        }

    def decision(self, lead: LeadInput, warnings: tuple[str, ...]) -> Decision:
        source = self.program.source
        computed = _resolve(self.stages)
        stage = computed
        prior = lead.prior_stage
        if prior and computed is not Stage.DISQUALIFIED and computed < prior:
            stage = computed if self.recycle else prior
        if stage is not computed:
            held = f"stage held at {stage.name} by prior_stage; the rules gave "
            warnings += (held + computed.name,)
        capped = self.capped()
        return Decision(
            lead_id=lead.lead_id,
            stage=stage,
            computed_stage=computed,
            owner=source.routing.get(stage, ""),
            scores=tuple(
                CategoryScore(c, capped[c], self.uncapped[c]) for c in sorted(capped)
            ),
            total=sum(capped.values(), Decimal(0)),
            reasons=_reasons(self.fired, stage),
            fired=tuple(self.fired),
            derived=tuple(DerivedFact(n, v, r) for (n, v), r in self.derived.items()),
            warnings=warnings,
            ruleset=source.name,
            version=source.version,
            content_hash=source.content_hash,
            as_of=lead.as_of,
        )


def _reasons(fired: list[Firing], reached: Stage) -> tuple[str, ...]:
    """What a sales rep reads: only the reasons that agree with the stage.

    A disqualified lead shows why it was disqualified; otherwise a rule whose only
    effect was a stage below the one reached is left out. Every fired rule is still
    listed among the fired rules.
    """
    if reached is Stage.DISQUALIFIED:
        return tuple(f.reason for f in fired if f.stage is Stage.DISQUALIFIED)
    return tuple(
        f.reason
        for f in fired
        if f.reason and not (f.actions == ("stage",) and f.stage and f.stage < reached)
    )


def _resolve(stages: list[Stage]) -> Stage:
    """Disqualification wins; otherwise the highest stage set; LEAD when none."""
    if Stage.DISQUALIFIED in stages:
        return Stage.DISQUALIFIED
    return max(stages, default=Stage.LEAD)
