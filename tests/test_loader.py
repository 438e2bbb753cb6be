"""Rules files: errors that name the file, line, rule and a fix; YAML pitfalls."""

from __future__ import annotations

import pytest
from rulekit import HEADER, lead, ruleset_text, version_of

from leadgate.compiler import compile_ruleset
from leadgate.errors import RulesetError
from leadgate.loader import load_text


def _error(text: str) -> RulesetError:
    with pytest.raises(RulesetError) as caught:
        compile_ruleset(load_text(text, "rules/kit.yaml"))
    return caught.value


@pytest.mark.parametrize(
    ("rules", "line", "rule_id", "message", "suggestion"),
    [
        (
            "- id: a\n  when: employes > 3\n  then: {stage: MQL}",
            17,
            "a",
            "unknown fact 'employes'",
            "did you mean 'employees'?",
        ),
        (
            "- id: b\n  when: email_domain in fre_mail\n  then: {stage: MQL}",
            17,
            "b",
            "unknown list 'fre_mail'",
            "did you mean 'free_mail'?",
        ),
        (
            "- id: c\n  when: count(pricing_veiw) > 1\n  then: {stage: MQL}",
            17,
            "c",
            "undeclared activity type 'pricing_veiw'",
            "did you mean 'pricing_view'?",
        ),
        (
            "- id: d\n  when: employees >\n  then: {stage: MQL}",
            17,
            "d",
            "expected a value",
            "",
        ),
        (
            "- id: e\n  when: score.fitt > 3\n  then: {stage: MQL}",
            17,
            "e",
            "no rule scores 'fitt'",
            "",
        ),
        (
            '- id: f\n  when: country == "XX"\n  then: {stage: MQL}',
            17,
            "f",
            "not an ISO 3166 country",
            "",
        ),
        (
            "- id: g\n  when: revenue / 0 > 1\n  then: {stage: MQL}",
            17,
            "g",
            "non-zero number constant",
            "",
        ),
        (
            "- id: h\n  when: exists(revenue)\n  then: {stage: MQLL}",
            18,
            "h",
            "a stage is one of",
            "did you mean 'MQL'?",
        ),
        (
            "- id: i\n  when: exists(revenue)\n  thn: {stage: MQL}",
            18,
            "i",
            "unknown key 'thn' in a rule",
            "did you mean 'then'?",
        ),
        (
            "- id: j\n  when: exists(revenue)\n  then: {score: {total: 5}}",
            18,
            "j",
            "not a score category name",
            "",
        ),
    ],
)
def test_loader_errors_name_file_line_rule_and_fix(
    rules: str, line: int, rule_id: str, message: str, suggestion: str
) -> None:
    """Each authoring mistake is reported where it is, with a suggestion when close."""
    error = _error(ruleset_text(rules))
    assert (error.path, error.line, error.rule_id) == ("rules/kit.yaml", line, rule_id)
    assert message in error.message
    assert error.suggestion == suggestion
    assert error.describe().startswith(f"rules/kit.yaml:{line}: rule '{rule_id}': ")


def test_loader_duplicate_rule_ids_and_keys_are_refused() -> None:
    """Two rules with one id, or one key twice in a mapping, are errors with lines."""
    twice = "- {id: a, when: exists(revenue), then: {stage: MQL}}\n" * 2
    assert "used twice (first at line 16)" in _error(ruleset_text(twice)).message
    doubled = _error(ruleset_text("- id: a\n  when: exists(revenue)\n  when: x\n"))
    assert (doubled.line, "appears twice" in doubled.message) == (18, True)


def test_loader_bad_yaml_gives_the_line() -> None:
    """A YAML syntax error names the line it was found on."""
    error = _error(ruleset_text("- id: a\n  when: [unclosed\n  then: {stage: MQL}"))
    assert error.line == 18
    assert error.message.startswith("not valid YAML")


def test_loader_yes_and_no_stay_text() -> None:
    """`NO` in a list is Norway, not false, as rule authors mean it."""
    rules = "- {id: nordic, when: country in nordics, then: {stage: MQL}}"
    header = HEADER.replace("lists:\n", "lists:\n  nordics: [NO, SE, DK]\n")
    with version_of(rules, header=header) as v:
        assert v.decide(lead({"country": "Norway"})).stage.name == "MQL"


def test_loader_unquoted_decimal_version_is_refused() -> None:
    """`version: 1.10` would read as 1.1, so it must be quoted."""
    text = HEADER.replace('version: "1.0"', "version: 1.10") + "rules: []\n"
    assert "in quotes" in _error(text).message


def test_loader_content_hash_ignores_comments_and_layout() -> None:
    """The hash is of normalised content: comments and spacing do not change it."""
    plain = ruleset_text("- {id: a, when: exists(revenue), then: {stage: MQL}}")
    commented = plain.replace("rules:", "# a comment\nrules:  ")
    changed = plain.replace("MQL", "SQL")
    hashes = [load_text(t).content_hash for t in (plain, commented, changed)]
    assert hashes[0] == hashes[1] != hashes[2]
    assert len(hashes[0]) == 64


def test_loader_unquoted_comma_in_flow_mapping_gets_a_hint() -> None:
    """A comma inside {...} cuts a condition short; the error says to quote it."""
    rules = "- {id: a, when: count(pricing_view, within 7d) > 1, then: {stage: MQL}}"
    error = _error(ruleset_text(rules))
    assert error.suggestion.endswith("put the condition in quotes")
    assert error.line == 16


def test_loader_cycle_errors_give_the_rule_line() -> None:
    """A score cycle is reported at the line of the rule that closes it."""
    rules = "- id: greedy\n  when: score.total > 5\n  then: {score: {fit: 1}}"
    error = _error(ruleset_text(rules))
    assert (error.rule_id, error.line) == ("greedy", 16)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            ruleset_text(
                "- id: deep\n  when: '"
                + "(" * 3000
                + "revenue > 1"
                + ")" * 3000
                + "'\n  then: {stage: MQL}"
            ),
            "nested more than 64 levels",
        ),
        (
            ruleset_text(
                "- id: nots\n  when: '" + "not " * 3000 + "student'\n"
                "  then: {stage: MQL}"
            ),
            "nested more than 64 levels",
        ),
        (HEADER + "rules: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        (
            ruleset_text(
                "- {id: a, when: exists(revenue), then: {stage: MQL}}",
                extra='description: "\\ud83d"\n',
            ),
            "not valid Unicode",
        ),
        (
            HEADER + "anchors: &a [x, x]\nrules: *a\n",
            "aliases (*name) are not allowed",
        ),
    ],
)
def test_loader_hostile_files_are_refused_not_crashed_on(
    text: str, message: str
) -> None:
    """Deep nesting, lone surrogates and alias bombs are refused as rule errors."""
    assert message in _error(text).message


def test_loader_test_activity_before_year_one_is_refused() -> None:
    """An age that reaches before the year 1 is an error in the test, not a crash."""
    tests = """
tests:
  - name: ancient
    as_of: "0001-01-01T00:00:00Z"
    lead: {activities: [{type: chat, ago: 1d}]}
    expect: {stage: LEAD}
"""
    text = ruleset_text("- {id: a, when: exists(revenue), then: {stage: MQL}}") + tests
    assert "before the year 1" in _error(text).message


def test_loader_negative_cap_is_refused() -> None:
    """A cap is the most a category can give, so a negative one is an error."""
    rules = "- {id: a, when: exists(revenue), then: {score: {risk: -5}}}"
    error = _error(ruleset_text(rules, extra="scores: {caps: {risk: -20}}\n"))
    assert "at least 0" in error.message
    assert error.line == 15


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            ruleset_text("- {id: a, when: exists(revenue), then: {stage: MQL}}")
            + "tests:\n  - name: t\n    as_of: '2026-12-01T00:00:00Z'\n"
            "    lead: {prior_stage: SQL}\n    expect: {stage: SQL}\n",
            "prior_stage goes beside lead",
        ),
        (
            HEADER.replace('version: "1.0"', "version: 1.0") + "rules: []\n",
            'write the version in quotes, as "1.0"',
        ),
    ],
)
def test_loader_common_slips_say_what_to_write(text: str, message: str) -> None:
    """A misplaced prior_stage and an unquoted version say what to write instead."""
    assert message in _error(text).message


def test_loader_unquoted_colon_in_a_condition_gets_a_hint() -> None:
    """`within: 7d` unquoted in block style breaks YAML; the error says the fix."""
    error = _error(ruleset_text("- id: a\n  when: count(chat, within: 7d) >= 1\n"))
    assert error.message.startswith("not valid YAML")
    assert "within 7d" in error.suggestion
