"""The rules store: loads every ruleset version under a directory and activates it.

A version is activated only if it parses, compiles, loads into the engine and passes its
own tests; otherwise the error is kept for the admin API and the versions already loaded
keep serving. The active version of a ruleset is its highest loaded version.
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import structlog

from leadgate.errors import NoActiveRulesetError, NotFoundError, RulesetError
from leadgate.loader import load_file
from leadgate.ruleset import RulesetSource
from leadgate.ruletests import run_tests
from leadgate.version import Limits, LoadedVersion, load_version

log = structlog.get_logger("leadgate.store")


@dataclass(frozen=True)
class LoadReport:
    """What one load of the rules directory did."""

    activated: tuple[str, ...] = ()
    unchanged: int = 0
    errors: tuple[RulesetError, ...] = ()


@dataclass
class _Ruleset:
    versions: dict[str, LoadedVersion] = field(default_factory=dict)

    @property
    def active(self) -> LoadedVersion | None:
        if not self.versions:
            return None
        return max(self.versions.values(), key=lambda v: v.source.version_key)


class RulesStore:
    """Every loaded ruleset version, which one is active, and the last load errors."""

    def __init__(
        self,
        directory: pathlib.Path,
        *,
        default_ruleset: str = "b2b_default",
        isolated: bool = True,
        limits: Limits | None = None,
    ) -> None:
        self.directory = directory
        self.default_ruleset = default_ruleset
        self._isolated = isolated
        self._limits = limits or Limits()
        self._rulesets: dict[str, _Ruleset] = {}
        self._errors: tuple[RulesetError, ...] = ()
        self._lock = threading.Lock()

    @property
    def errors(self) -> tuple[RulesetError, ...]:
        """The errors of the last load, one per file that was refused."""
        return self._errors

    def load(self) -> LoadReport:
        """Load every ruleset file under the directory; a refused file adds nothing."""
        activated, errors, unchanged = [], [], 0
        for path in rule_files(self.directory):
            try:
                loaded = self._load_path(path)
            except RulesetError as error:
                errors.append(error.located(path=str(path)))
                log.warning("ruleset.rejected", path=str(path), error=error.describe())
                continue
            if loaded is None:
                unchanged += 1
            else:
                activated.append(f"{loaded.source.name}@{loaded.source.version}")
        self._errors = tuple(errors)
        return LoadReport(tuple(activated), unchanged, tuple(errors))

    def _load_path(self, path: pathlib.Path) -> LoadedVersion | None:
        source = load_file(path)
        existing = self._find(source.name, source.version)
        if existing is not None:
            if existing.source.content_hash == source.content_hash:
                return None
            raise RulesetError(
                f"{source.name} {source.version} is already loaded from "
                f"{existing.source.path} with different content; raise the version"
            )
        version = self.prepare(source)
        with self._lock:
            self._rulesets.setdefault(source.name, _Ruleset()).versions[
                source.version
            ] = version
        log.info(
            "ruleset.activated",
            ruleset=source.name,
            version=source.version,
            content_hash=source.content_hash,
            rules=len(source.rules),
        )
        return version

    def prepare(self, source: RulesetSource) -> LoadedVersion:
        """Compile a version and run its tests; release it again if any test fails."""
        version = load_version(source, isolated=self._isolated, limits=self._limits)
        failures = [outcome for outcome in run_tests(version) if not outcome.passed]
        if failures:
            version.release()
            first = failures[0]
            raise RulesetError(
                f"{len(failures)} of {len(source.tests)} rule tests fail; first: "
                + first.describe(),
                path=first.test.path,
                line=first.test.line,
            )
        return version

    def _find(self, name: str, version: str) -> LoadedVersion | None:
        ruleset = self._rulesets.get(name)
        return ruleset.versions.get(version) if ruleset else None

    def resolve(self, name: str = "", version: str = "") -> LoadedVersion:
        """The version that answers a call: the pinned one, else the active one."""
        name = name or self.default_ruleset
        ruleset = self._rulesets.get(name)
        if ruleset is None:
            known = ", ".join(sorted(self._rulesets)) or "none"
            if name == self.default_ruleset:
                raise NoActiveRulesetError(f"no valid version of '{name}' is loaded")
            raise NotFoundError(f"unknown ruleset '{name[:64]}' (loaded: {known})")
        if version:
            found = ruleset.versions.get(version)
            if found is None:
                known = ", ".join(sorted(ruleset.versions))
                wanted = version[:64]
                raise NotFoundError(
                    f"ruleset '{name}' has no version '{wanted}' (loaded: {known})"
                )
            return found
        active = ruleset.active
        if active is None:
            raise NoActiveRulesetError(f"no valid version of '{name}' is loaded")
        return active

    def rulesets(self) -> dict[str, list[LoadedVersion]]:
        """Every loaded version by ruleset name, highest version first."""
        with self._lock:
            return {
                name: sorted(
                    ruleset.versions.values(),
                    key=lambda v: v.source.version_key,
                    reverse=True,
                )
                for name, ruleset in sorted(self._rulesets.items())
            }

    def close(self) -> None:
        """Release every version from the engine."""
        with self._lock:
            for ruleset in self._rulesets.values():
                for version in ruleset.versions.values():
                    version.release()
            self._rulesets.clear()


def rule_files(directory: pathlib.Path) -> Iterator[pathlib.Path]:
    """The ruleset files under a directory: YAML, not tests, not in hidden folders."""
    if directory.is_file():
        yield directory
        return
    for path in sorted(directory.rglob("*.yaml")):
        relative = path.relative_to(directory)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if not path.name.endswith(".tests.yaml"):
            yield path
