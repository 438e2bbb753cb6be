"""The shipped rulesets pass their own tests, through the runner activation uses."""

from __future__ import annotations

import pathlib

import pytest

from leadgate.loader import load_file
from leadgate.ruletests import run_tests
from leadgate.store import rule_files
from leadgate.version import LoadedVersion, load_version

RULES = pathlib.Path(__file__).resolve().parent.parent / "rules"
CASES = [
    pytest.param(path, test.name, id=f"{path.stem}: {test.name}")
    for path in rule_files(RULES)
    for test in load_file(path).tests
]


@pytest.fixture(scope="module")
def versions() -> dict[pathlib.Path, LoadedVersion]:
    """Each shipped ruleset loaded once, compiled in a child process as in serving."""
    return {path: load_version(load_file(path)) for path in rule_files(RULES)}


def test_shipped_rules_have_enough_tests() -> None:
    """Both shipped rulesets carry test cases, covering every stage."""
    stages = {}
    for path in rule_files(RULES):
        stages[path.stem] = {test.expect.stage.name for test in load_file(path).tests}
    assert set(stages) == {"b2b_default", "x_education"}
    for covered in stages.values():
        assert covered == {"DISQUALIFIED", "LEAD", "MQL", "SQL"}


@pytest.mark.parametrize(("path", "name"), CASES)
def test_shipped_rules_case_passes(
    versions: dict[pathlib.Path, LoadedVersion], path: pathlib.Path, name: str
) -> None:
    """One test case beside a shipped ruleset gives the decision it expects."""
    (outcome,) = [o for o in run_tests(versions[path]) if o.test.name == name]
    assert outcome.passed, outcome.describe()
