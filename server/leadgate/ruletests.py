"""Running a ruleset's own test cases: one runner for the CLI, CI and activation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from leadgate.decision import Decision, LeadInput
from leadgate.errors import LeadgateError
from leadgate.ruleset import RuleSpec, RuleTest
from leadgate.version import LoadedVersion


@dataclass(frozen=True)
class TestOutcome:
    """One test case's result: the problems found, none when it passed."""

    test: RuleTest
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        where = f"{self.test.path}:{self.test.line}"
        if self.passed:
            return f"PASS {where} {self.test.name}"
        return f"FAIL {where} {self.test.name}: " + "; ".join(self.problems)


def run_tests(version: LoadedVersion) -> list[TestOutcome]:
    """Decide every test lead with the version and compare with what it expects."""
    return [_run(version, test) for test in version.source.tests]


def _run(version: LoadedVersion, test: RuleTest) -> TestOutcome:
    lead = LeadInput(
        lead_id=f"test:{test.name}",
        attributes=test.attributes,
        activities=test.activities,
        as_of=test.as_of,
        prior_stage=test.prior_stage,
    )
    try:
        decision = version.decide(lead)
    except LeadgateError as error:
        return TestOutcome(test, (f"the lead was refused: {error}",))
    rules = version.source.rules
    return TestOutcome(test, tuple(_problems(test, decision, rules)))


def _problems(
    test: RuleTest, decision: Decision, rules: Sequence[RuleSpec]
) -> list[str]:
    expect = test.expect
    problems = []
    if decision.stage is not expect.stage:
        problems.append(f"stage {decision.stage.name}, expected {expect.stage.name}")
    scores = {s.category: s.points for s in decision.scores} | {"total": decision.total}
    for category, points in expect.score.items():
        got = scores.get(category, Decimal(0))
        if got != points:
            problems.append(f"score.{category} {got}, expected {points}")
    fired = [f.rule_id for f in decision.fired]
    known = {rule.id for rule in rules}
    problems += [
        f"expects rule '{r}', which the ruleset does not have"
        for r in (*expect.fired, *expect.not_fired)
        if r not in known
    ]
    problems += [f"rule '{r}' did not fire" for r in expect.fired if r not in fired]
    problems += [f"rule '{r}' fired" for r in expect.not_fired if r in fired]
    derived: dict[str, list[object]] = {}
    for fact in decision.derived:
        derived.setdefault(fact.name, []).append(fact.value)
    for name, value in expect.derived.items():
        wanted = value.casefold() if isinstance(value, str) else value
        if wanted not in derived.get(name, []):
            problems.append(f"derived {name}={derived.get(name)}, expected {value!r}")
    return problems
