"""Ordering rules into strata so that negations and score thresholds see final facts.

A rule that reads a derived fact positively may run in the same stratum as the rules
that derive it: the engine chains them. A rule that reads one negatively (`not`,
`missing`) or that reads a score must wait until every rule that derives that fact, or
that scores, has finished: it goes in a later stratum. Dependencies that would need a
rule to wait for itself are a cycle, refused when the ruleset loads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from leadgate.errors import RulesetError


@dataclass(frozen=True)
class Dependencies:
    """What one rule reads and writes, as far as ordering is concerned."""

    rule_id: str
    reads: frozenset[str]  # derived facts read positively
    waits_for: frozenset[str]  # derived facts read negatively
    reads_score: bool
    derives: frozenset[str]
    scores: bool


def stratify(rules: Sequence[Dependencies]) -> dict[str, int]:
    """Give each rule its stratum, or raise naming the rules of a cycle."""
    edges = _edges(rules)
    for rule in rules:
        _refuse_cycle(rule.rule_id, edges)
    levels = {rule.rule_id: 0 for rule in rules}
    changed = True
    while changed:
        changed = False
        for rule_id, needs in edges.items():
            for writer, strict in needs:
                wanted = levels[writer] + (1 if strict else 0)
                if wanted > levels[rule_id]:
                    levels[rule_id] = wanted
                    changed = True
    return levels


def _edges(rules: Sequence[Dependencies]) -> dict[str, list[tuple[str, bool]]]:
    """For each rule, the rules it depends on, and whether it must wait for them."""
    writers: dict[str, list[str]] = {}
    for rule in rules:
        for name in rule.derives:
            writers.setdefault(name, []).append(rule.rule_id)
    scorers = [rule.rule_id for rule in rules if rule.scores]
    edges: dict[str, list[tuple[str, bool]]] = {}
    for rule in rules:
        needs = [(w, False) for name in rule.reads for w in writers.get(name, [])]
        needs += [(w, True) for name in rule.waits_for for w in writers.get(name, [])]
        if rule.reads_score:
            needs += [(s, True) for s in scorers]
        edges[rule.rule_id] = needs
    return edges


def _refuse_cycle(start: str, edges: Mapping[str, list[tuple[str, bool]]]) -> None:
    """Raise if `start` must wait, through some path, for itself."""
    path = _strict_path_to(start, start, edges)
    if path is not None:
        cycle = " -> ".join([start, *path])
        raise RulesetError(
            f"rules depend on their own outcome and would never settle: {cycle}",
            rule_id=start,
            suggestion="a rule may not negate a fact it leads to, nor score "
            "when it reads a score",
        )


def _strict_path_to(
    target: str, start: str, edges: Mapping[str, list[tuple[str, bool]]]
) -> list[str] | None:
    """A dependency path from start back to target with at least one strict step."""
    stack: list[tuple[str, list[str], bool]] = [(start, [], False)]
    seen: set[tuple[str, bool]] = set()
    while stack:
        node, path, strict = stack.pop()
        for writer, step_strict in edges[node]:
            now_strict = strict or step_strict
            if writer == target and now_strict:
                return [*path, writer]
            if (writer, now_strict) not in seen:
                seen.add((writer, now_strict))
                stack.append((writer, [*path, writer], now_strict))
    return None
