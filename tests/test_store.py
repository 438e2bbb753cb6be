"""The rules store: activation only of valid, tested versions; pins; refusals."""

from __future__ import annotations

import os
import pathlib

import pytest
from rulekit import AS_OF, lead, ruleset_text

from leadgate.errors import NoActiveRulesetError, NotFoundError
from leadgate.ruleset import Stage
from leadgate.store import RulesStore

RULE = "- {id: big, when: employees >= 100, then: {stage: %s}}"
TEST = f"""
tests:
  - name: a big company gets its stage
    as_of: "{AS_OF.isoformat()}"
    lead: {{attributes: {{employees: 500}}}}
    expect: {{stage: %s}}
"""


def _ruleset(version: str, stage: str = "MQL", expected: str | None = None) -> str:
    text = ruleset_text(RULE % stage).replace('version: "1.0"', f'version: "{version}"')
    return text + TEST % (expected or stage)


def _store(directory: pathlib.Path, files: dict[str, str]) -> RulesStore:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return RulesStore(directory, default_ruleset="kit", isolated=False)


def test_store_highest_version_is_active_and_pins_reach_others(
    tmp_path: pathlib.Path,
) -> None:
    """2.10 beats 2.9 (numeric order); a pin reaches the older version."""
    store = _store(
        tmp_path, {"kit.yaml": _ruleset("2.10", "SQL"), "old/kit.yaml": _ruleset("2.9")}
    )
    report = store.load()
    assert sorted(report.activated) == ["kit@2.10", "kit@2.9"]
    big = lead({"employees": 500})
    assert store.resolve().decide(big).stage is Stage.SQL
    assert store.resolve("kit", "2.9").decide(big).stage is Stage.MQL
    with pytest.raises(NotFoundError, match=r"no version '3\.0'"):
        store.resolve("kit", "3.0")
    with pytest.raises(NotFoundError, match="unknown ruleset 'other'"):
        store.resolve("other")
    store.close()


def test_store_version_failing_its_tests_is_not_activated(
    tmp_path: pathlib.Path,
) -> None:
    """A file whose own tests fail is refused with the test's line; others serve."""
    store = _store(
        tmp_path,
        {"kit.yaml": _ruleset("1.0"), "newer/kit.yaml": _ruleset("1.1", "MQL", "SQL")},
    )
    report = store.load()
    assert report.activated == ("kit@1.0",)
    (error,) = report.errors
    assert error.path.endswith("newer/kit.yaml")
    assert "1 of 1 rule tests fail" in error.message
    assert "stage MQL, expected SQL" in error.message
    assert store.resolve().source.version == "1.0"
    store.close()


def test_store_refused_ruleset_is_unavailable_not_unknown(
    tmp_path: pathlib.Path,
) -> None:
    """A ruleset whose only file was refused fails its calls naming the reason."""
    store = _store(tmp_path, {"kit.yaml": _ruleset("1.0", "MQL", "SQL")})
    store.load()
    with pytest.raises(
        NoActiveRulesetError, match=r"its file was refused: .*kit\.yaml"
    ):
        store.resolve("kit")
    with pytest.raises(NotFoundError, match="did you mean 'kit'"):
        store.resolve("kitt")
    store.close()


def test_store_same_version_with_other_content_is_refused(
    tmp_path: pathlib.Path,
) -> None:
    """Two different contents under one name and version: the second is an error."""
    store = _store(
        tmp_path, {"a/kit.yaml": _ruleset("1.0"), "b/kit.yaml": _ruleset("1.0", "SQL")}
    )
    report = store.load()
    assert len(report.activated) == 1
    assert "different content; raise the version" in report.errors[0].message
    store.close()


def test_store_without_a_valid_default_cannot_serve(tmp_path: pathlib.Path) -> None:
    """When every version of the default is broken, calls get an operator error."""
    store = _store(tmp_path, {"kit.yaml": "ruleset: kit\nversion: [broken\n"})
    report = store.load()
    assert report.errors[0].line == 3
    with pytest.raises(NoActiveRulesetError):
        store.resolve()


def test_store_reads_kubernetes_configmap_layout(tmp_path: pathlib.Path) -> None:
    """Files reached through a `..data` symlink load once, hidden folders skipped."""
    payload = tmp_path / "..2026_12_01_00_00_00.1"
    payload.mkdir()
    (payload / "kit.yaml").write_text(_ruleset("1.0"))
    os.symlink(payload.name, tmp_path / "..data")
    os.symlink("..data/kit.yaml", tmp_path / "kit.yaml")
    store = RulesStore(tmp_path, default_ruleset="kit", isolated=False)
    assert store.load().activated == ("kit@1.0",)
    store.close()


def test_store_identical_copy_of_a_version_is_harmless(tmp_path: pathlib.Path) -> None:
    """The same content in two files loads once and raises no error."""
    store = _store(
        tmp_path, {"a/kit.yaml": _ruleset("1.0"), "b/kit.yaml": _ruleset("1.0")}
    )
    report = store.load()
    assert (report.activated, report.unchanged, report.errors) == (("kit@1.0",), 1, ())
    store.close()


def test_store_versions_that_compare_equal_clash(tmp_path: pathlib.Path) -> None:
    """2.0 and 2.00 are one version: the second file with other content is refused."""
    store = _store(
        tmp_path, {"a/kit.yaml": _ruleset("2.0"), "b/kit.yaml": _ruleset("2.00", "SQL")}
    )
    report = store.load()
    assert report.activated == ("kit@2.0",)
    assert "(as 2.0) with different content" in report.errors[0].message
    store.close()


def test_store_skips_what_is_not_a_regular_file(tmp_path: pathlib.Path) -> None:
    """A named pipe or a folder called x.yaml is passed over; loading never blocks."""
    store = _store(tmp_path, {"kit.yaml": _ruleset("1.0")})
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "folder.yaml").mkdir()
    assert store.load().activated == ("kit@1.0",)
    store.close()


def test_store_test_naming_an_unknown_rule_fails(tmp_path: pathlib.Path) -> None:
    """A misspelt rule id in a test's expectations fails the test, not passes it."""
    text = _ruleset("1.0").replace(
        "expect: {stage: MQL}", "expect: {stage: MQL, not_fired: [bigg]}"
    )
    store = _store(tmp_path, {"kit.yaml": text})
    (error,) = store.load().errors
    assert "expects rule 'bigg', which the ruleset does not have" in error.message
    store.close()
