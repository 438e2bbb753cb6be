"""The rules store: every loaded ruleset version, which one is active, and reloads.

One activation path serves start-up and every reload: a file's version is activated only
if it parses, compiles, loads into the engine and passes its own tests. Otherwise the
error is kept for the admin API and whatever that file gave before keeps serving. The
active version of a ruleset is its highest loaded version. A version whose file changed
or vanished is retired: new calls no longer reach it, and it is released from the engine
once its last call in flight has finished.
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

from leadgate.errors import (
    NoActiveRulesetError,
    NotFoundError,
    RulesetError,
    did_you_mean,
)
from leadgate.loader import load_file
from leadgate.ruleset import RulesetSource
from leadgate.ruletests import run_tests
from leadgate.version import Limits, LoadedVersion, load_version

log = structlog.get_logger("leadgate.store")


@dataclass(frozen=True)
class LoadReport:
    """What one load of the rules directory did."""

    activated: tuple[str, ...] = ()
    retired: tuple[str, ...] = ()
    unchanged: int = 0
    errors: tuple[RulesetError, ...] = ()
    loaded_names: frozenset[str] = frozenset()


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
        self._by_path: dict[str, LoadedVersion] = {}
        self._errors: tuple[RulesetError, ...] = ()
        self._refused: dict[str, RulesetError] = {}
        self._lock = threading.Lock()
        self._reloading = threading.Lock()

    @property
    def errors(self) -> tuple[RulesetError, ...]:
        """The errors of the last load, one per file that was refused."""
        return self._errors

    def load(self) -> LoadReport:
        """Load what changed under the directory; the same path at start and reload."""
        with self._reloading:
            activated, retired, errors, unchanged = [], [], [], 0
            paths = list(rule_files(self.directory))
            present = {str(path) for path in paths}
            self._refused = {}
            for path in paths:
                try:
                    outcome = self._load_path(path, present)
                except RulesetError as error:
                    located = error.located(path=str(path))
                    errors.append(located)
                    log.warning(
                        "ruleset.rejected", path=str(path), error=located.describe()
                    )
                    continue
                if outcome is None:
                    unchanged += 1
                else:
                    activated.append(outcome[0])
                    retired += outcome[1]
            retired += self._forget(set(self._by_path) - present)
            self._errors = tuple(errors)
            return LoadReport(
                tuple(activated),
                tuple(retired),
                unchanged,
                tuple(errors),
                frozenset(self._names()),
            )

    def _load_path(
        self, path: pathlib.Path, present: set[str]
    ) -> tuple[str, list[str]] | None:
        try:
            source = load_file(path)
        except RulesetError:
            raise
        except Exception as error:  # one unreadable file must not stop the others
            log.exception("ruleset.unreadable", path=str(path))
            raise RulesetError(
                f"cannot read this file ({type(error).__name__})"
            ) from None
        before = self._by_path.get(str(path))
        if before is not None and before.source.content_hash == source.content_hash:
            return None
        try:
            if self._refuse_clash(source, str(path), present):
                return None
            version = self.prepare(source)
        except RulesetError as error:
            self._refused[source.name] = error.located(path=str(path))
            raise
        with self._lock:
            self._by_path[str(path)] = version
        log.info(
            "ruleset.activated",
            ruleset=source.name,
            version=source.version,
            content_hash=source.content_hash,
            rules=len(source.rules),
            path=str(path),
        )
        return _label(source), self._retire([before] if before else [])

    def _refuse_clash(
        self, source: RulesetSource, path: str, present: set[str]
    ) -> bool:
        """Raise if another file gives this name and version other content.

        Returns True when another file still present gives the very same content, so
        this copy adds nothing. A file that is gone (renamed, say) clashes with
        nothing: its version is retired once this load is done.
        """
        for other_path, other in self._by_path.items():
            same = (other.source.name, other.source.version_key) == (
                source.name,
                source.version_key,
            )
            if not same or other_path not in present:
                continue
            if other_path == path:
                log.warning(
                    "ruleset.changed_in_place",
                    ruleset=source.name,
                    version=source.version,
                    path=path,
                )
                continue
            if other.source.content_hash == source.content_hash:
                return True
            raise RulesetError(
                f"{source.name} {source.version} is already loaded from "
                f"{other_path} (as {other.source.version}) with different content; "
                "raise the version"
            )
        return False

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

    def _forget(self, paths: set[str]) -> list[str]:
        with self._lock:
            gone = [self._by_path.pop(path) for path in sorted(paths)]
        return self._retire(gone)

    def _retire(self, versions: list[LoadedVersion]) -> list[str]:
        for version in versions:
            version.retire()
            log.info(
                "ruleset.retired",
                ruleset=version.source.name,
                version=version.source.version,
                content_hash=version.source.content_hash,
            )
        return [_label(version.source) for version in versions]

    @contextmanager
    def holding(self) -> Iterator[Callable[[str, str], LoadedVersion]]:
        """A resolver for one call: each ruleset and pin is looked up once, then held.

        Every lead of a batch that names the same ruleset gets the same version, even
        if a reload activates another one half-way through the batch.
        """
        held: dict[tuple[str, str], LoadedVersion] = {}

        def resolve(name: str, version: str) -> LoadedVersion:
            key = (name or self.default_ruleset, version)
            if key not in held:
                with self._lock:
                    found = self._resolve(*key)
                    found.enter()
                held[key] = found
            return held[key]

        try:
            yield resolve
        finally:
            for found in held.values():
                found.leave()

    def resolve(self, name: str = "", version: str = "") -> LoadedVersion:
        """The version a call would get now: the pinned one, else the active one."""
        with self._lock:
            return self._resolve(name or self.default_ruleset, version)

    def _resolve(self, name: str, version: str) -> LoadedVersion:
        versions = {
            v.source.version: v for v in self._by_path.values() if v.source.name == name
        }
        if not versions:
            if name in self._refused:
                reason = self._refused[name].describe()
                raise NoActiveRulesetError(
                    f"no valid version of '{name}' is loaded; its file was refused: "
                    + reason
                )
            if name == self.default_ruleset:
                raise NoActiveRulesetError(f"no valid version of '{name}' is loaded")
            known = ", ".join(sorted(self._names())) or "none"
            hint = did_you_mean(name, self._names() | set(self._refused))
            hint = f"; {hint}" if hint else ""
            raise NotFoundError(
                f"unknown ruleset '{name[:64]}' (loaded: {known}){hint}"
            )
        if not version:
            return max(versions.values(), key=lambda v: v.source.version_key)
        if version not in versions:
            known = ", ".join(sorted(versions))
            wanted = version[:64]
            raise NotFoundError(
                f"ruleset '{name}' has no version '{wanted}' (loaded: {known})"
            )
        return versions[version]

    def _names(self) -> set[str]:
        return {v.source.name for v in self._by_path.values()}

    def rulesets(self) -> dict[str, list[LoadedVersion]]:
        """Every loaded version by ruleset name, highest version first."""
        with self._lock:
            grouped: dict[str, list[LoadedVersion]] = {}
            for loaded in self._by_path.values():
                grouped.setdefault(loaded.source.name, []).append(loaded)
        return {
            name: sorted(found, key=lambda v: v.source.version_key, reverse=True)
            for name, found in sorted(grouped.items())
        }

    def close(self) -> None:
        """Retire every version; each is released once its calls have finished."""
        with self._lock:
            versions = list(self._by_path.values())
            self._by_path.clear()
        for version in versions:
            version.retire()


def _label(source: RulesetSource) -> str:
    return f"{source.name}@{source.version}"


def rule_files(directory: pathlib.Path) -> Iterator[pathlib.Path]:
    """The ruleset files under a directory: YAML, not tests, not in hidden folders."""
    if directory.is_file():
        yield directory
        return
    for path in sorted(directory.rglob("*.yaml")):
        relative = path.relative_to(directory)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and not path.name.endswith(".tests.yaml"):
            yield path
