"""Tests for the `leadgate` command line, run in-process through cli.main."""

from __future__ import annotations

import json
import pathlib
import re
import textwrap
from collections.abc import Callable

import pytest
import structlog

from leadgate.app import Running
from leadgate.cli import main

REPO = pathlib.Path(__file__).resolve().parent.parent
LEAD_FILE = REPO / "tests" / "data" / "srv_lead.json"
MakeRulesDir = Callable[[str, str], pathlib.Path]

HEADER = """\
ruleset: broken
version: "1.0"
facts:
  employees: {type: count}
  industry:  {type: keyword}
rules:
"""


def broken(rules: str) -> str:
    """A ruleset file with a valid header and the given rules text."""
    return HEADER + textwrap.dedent(rules)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            broken("""\
                  - id: big-company
                    when: 'employes >= 200'
                    then: {stage: MQL}
                """),
            8,
            "rule 'big-company': unknown fact 'employes' (did you mean 'employees'?)",
        ),
        (
            broken("""\
                  - id: fine
                    when: 'employees >= 10'
                    then: {stage: MQL}
                  - id: big-words
                    when: 'employees > "big"'
                    then: {stage: SQL}
                """),
            11,
            "rule 'big-words': compares values of different kinds: number and text",
        ),
        (
            broken("""\
                  - id: unclosed
                    when: 'employees >= 10'
                    then: {stage: MQL
                  - id: next
                """),
            10,
            "not valid YAML: expected ',' or '}', but got ':'",
        ),
    ],
    ids=["misspelt-fact", "type-mismatch", "bad-yaml"],
)
def test_check_reports_file_line_and_rule(
    make_rules_dir: MakeRulesDir,
    capsys: pytest.CaptureFixture[str],
    text: str,
    line: int,
    message: str,
) -> None:
    """A broken rules file fails `check` with `file:line: rule 'id': message`."""
    path = make_rules_dir("broken.yaml", text) / "broken.yaml"

    code = main(["check", str(path)])

    assert code == 1
    assert capsys.readouterr().out == f"ERROR {path}:{line}: {message}\n"


def test_check_reports_every_file_of_a_directory(
    make_rules_dir: MakeRulesDir, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check` on a directory reports the good and the broken file and fails."""
    shipped = (REPO / "rules" / "x_education.yaml").read_text(encoding="utf-8")
    make_rules_dir("a_good.yaml", shipped)
    rules = make_rules_dir(
        "b_bad.yaml", broken("  - id: x\n    when: 'nope'\n    then: {stage: MQL}\n")
    )

    code = main(["check", str(rules)])

    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0] == f"OK    {rules / 'a_good.yaml'}: x_education 2026.12.0, 28 rules"
    assert out[1] == f"ERROR {rules / 'b_bad.yaml'}:8: rule 'x': unknown fact 'nope'"
    assert len(out) == 2


def test_check_passes_the_shipped_rules(capsys: pytest.CaptureFixture[str]) -> None:
    """`check rules/` accepts both shipped rulesets and exits 0."""
    code = main(["check", str(REPO / "rules")])

    assert code == 0
    assert capsys.readouterr().out.splitlines() == [
        f"OK    {REPO / 'rules' / 'b2b_default.yaml'}: b2b_default 2026.12.0, 35 rules",
        f"OK    {REPO / 'rules' / 'x_education.yaml'}: x_education 2026.12.0, 28 rules",
    ]


def test_test_runs_the_shipped_rule_tests(capsys: pytest.CaptureFixture[str]) -> None:
    """`test rules/` runs every case beside the rules and they all pass."""
    code = main(["test", str(REPO / "rules")])

    summary = capsys.readouterr().out.splitlines()[-1]
    found = re.fullmatch(r"(\d+) passed, 0 failed", summary)
    assert code == 0
    assert found is not None, summary
    assert int(found[1]) >= 20


@pytest.mark.parametrize("command", ["check", "test"])
def test_check_and_test_fail_on_a_missing_path(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """A rules path that does not exist is an error, not an empty success."""
    missing = tmp_path / "rulez"

    code = main([command, str(missing)])

    captured = capsys.readouterr()
    assert code != 0
    assert str(missing) in captured.out + captured.err


def test_qualify_prints_the_decision_as_json(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    """`qualify` sends a lead file to the server and prints the decision as JSON."""
    with structlog.testing.capture_logs():
        code = main(
            ["qualify", str(LEAD_FILE), "--target", f"127.0.0.1:{running.port}"]
        )

    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (printed["lead_id"], printed["stage"], printed["owner"]) == (
        "srv-sql-1",
        "STAGE_SQL",
        "sales",
    )
    assert printed["total_score_exact"] == "95"
    assert printed["as_of"] == "2026-12-01T12:00:00Z"


def test_qualify_reports_a_refused_lead(
    running: Running, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lead the server refuses exits 1 with the status and the field."""
    path = tmp_path / "lead.json"
    path.write_text('{"attributes": {"employees": "lots"}}', encoding="utf-8")

    with structlog.testing.capture_logs():
        code = main(["qualify", str(path), "--target", f"127.0.0.1:{running.port}"])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.startswith("leadgate: INVALID_ARGUMENT: attributes.employees: ")
    assert captured.err.endswith(" (field attributes.employees)\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"lead_id": "l1",', "leadgate: the lead is not valid JSON: "),
        ('["l1"]', "leadgate: the lead must be a JSON object"),
    ],
)
def test_qualify_refuses_a_file_that_is_not_a_lead(
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    message: str,
) -> None:
    """A lead file that is not a JSON object exits 2 before calling any server."""
    path = tmp_path / "lead.json"
    path.write_text(text, encoding="utf-8")

    code = main(["qualify", str(path), "--target", "127.0.0.1:1"])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.startswith(message)


def test_qualify_reports_a_missing_lead_file(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lead file that does not exist exits 2 with a message naming it."""
    missing = tmp_path / "lead.json"

    code = main(["qualify", str(missing), "--target", "127.0.0.1:1"])

    assert code == 2
    assert str(missing) in capsys.readouterr().err
