"""The engine adapter: each workaround for a measured durable_rules defect, tested."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from rulekit import lead, version_of

from leadgate.engine import EngineRuleset, check_isolated, encode, encode_fact
from leadgate.errors import EvaluationError, RulesetError
from leadgate.ruleset import Stage


@pytest.mark.parametrize(
    "number",
    [1e-05, 1e-7, 2.5e-06, 1e16, 123456789012345.5, -3.25, 0.1, 1e15, Decimal("0.9")],
)
def test_encode_never_writes_an_exponent(number: float | Decimal) -> None:
    """Numbers reach the C core as plain decimals, which it can parse."""
    for text in (encode({"v": number}), encode_fact({"v": number})):
        assert "e" not in text.lower()
        assert Decimal(json.loads(text, parse_float=Decimal)["v"]) == Decimal(
            repr(number) if isinstance(number, float) else number
        )


def test_encode_keeps_unicode_and_quotes() -> None:
    """Strings with quotes, backslashes and non-ASCII text survive the trip."""
    fact = {"t": "lead", "a_title": 'Directeur "général" \\ Café'}
    assert json.loads(encode_fact(fact)) == fact
    assert json.loads(encode(fact)) == fact


def test_engine_sixty_five_rules_matching_one_lead_still_evaluate() -> None:
    """150 rules that all match one lead fire; the engine alone fails at 65 (303)."""
    rules = "\n".join(
        f"- {{id: r{i}, when: employees > {i}, then: {{score: {{fit: 1}}}}}}"
        for i in range(150)
    )
    with version_of(rules) as v:
        decision = v.decide(lead({"employees": 1000}))
    assert len(decision.fired) == 150
    assert decision.total == 150


def test_engine_many_distinct_tests_of_one_fact_do_not_hang() -> None:
    """600 rules on one keyword compile: the engine alone freezes at 513 tests."""
    rules = "\n".join(
        f'- {{id: r{i}, when: industry == "i{i}", then: {{stage: MQL}}}}'
        for i in range(600)
    )
    with version_of(rules) as v:
        assert v.decide(lead({"industry": "i599"})).stage is Stage.MQL
        assert v.decide(lead({"industry": "other"})).stage is Stage.LEAD


def test_engine_isolated_check_survives_a_hanging_definition() -> None:
    """A definition that freezes the engine is refused from a child process."""
    definition = {
        f"r{i}": {"all": [{"m": {"$and": [{"t": "lead"}, {"v": i}]}}]}
        for i in range(600)
    }
    with pytest.raises(RulesetError, match="hung"):
        check_isolated(
            "hang", definition, [{"t": "lead", "id": "l", "v": 1}], timeout=3
        )


def test_engine_isolated_check_reports_a_refused_definition() -> None:
    """An engine error in the child process becomes a RulesetError."""
    definition = {"r": {"all": [{"m": {"$bogus": {"v": 1}}}]}}
    with pytest.raises(RulesetError, match="failed"):
        check_isolated("bad", definition, [])


def test_engine_released_ruleset_fails_cleanly() -> None:
    """Evaluating a released version raises EvaluationError, never crashes."""
    engine = EngineRuleset("released", {"r": {"all": [{"m": {"t": "lead"}}]}})
    engine.close()
    engine.close()
    with pytest.raises(EvaluationError, match="released"):
        engine.evaluate([{"t": "lead", "id": "l"}], lambda rule: (), max_firings=10)


def test_engine_action_error_surfaces_and_session_is_deleted() -> None:
    """An error raised while firing reaches the caller; the next session is clean."""
    engine = EngineRuleset("raising", {"r": {"all": [{"m": {"t": "lead"}}]}})
    seen: list[str] = []

    def explode(rule: str) -> list[dict[str, object]]:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        engine.evaluate([{"t": "lead", "id": "l"}], explode, max_firings=10)
    engine.evaluate(
        [{"t": "lead", "id": "l"}], lambda r: seen.append(r) or (), max_firings=10
    )
    engine.close()
    assert seen == ["r"]
