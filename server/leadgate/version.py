"""A loaded ruleset version: its compiled program, live in the engine."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from leadgate.compiler import Program, compile_ruleset
from leadgate.decision import Decision, LeadInput, decide
from leadgate.engine import EngineRuleset, check_isolated
from leadgate.ruleset import RulesetSource

_serial = itertools.count()
_serial_lock = threading.Lock()


@dataclass(frozen=True)
class Limits:
    """How far one evaluation may go before it is stopped.

    The limit counts the engine's activations, not rules fired: a rule that joins
    several facts with many derived values is activated once per combination.
    """

    max_firings_per_rule: int = 200
    extra_firings: int = 10_000

    def firings(self, program: Program) -> int:
        return self.extra_firings + self.max_firings_per_rule * len(program.rules)


@dataclass
class LoadedVersion:
    """One ruleset version that can decide leads until it is released."""

    program: Program
    engine: EngineRuleset
    limits: Limits
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    _in_flight: int = 0
    _retired: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def source(self) -> RulesetSource:
        return self.program.source

    def decide(self, lead: LeadInput) -> Decision:
        """Decide one lead with this version."""
        return decide(
            self.program,
            self.engine,
            lead,
            max_firings=self.limits.firings(self.program),
        )

    def enter(self) -> None:
        """Count a call that is about to use this version."""
        with self._lock:
            self._in_flight += 1

    def leave(self) -> None:
        """Count a call as finished; the last one out releases a retired version."""
        with self._lock:
            self._in_flight -= 1
            drained = self._retired and self._in_flight == 0
        if drained:
            self.release()

    def retire(self) -> None:
        """Take this version out of service; it is released once no call uses it."""
        with self._lock:
            self._retired = True
            drained = self._in_flight == 0
        if drained:
            self.release()

    @property
    def released(self) -> bool:
        """Whether the engine has let go of this version."""
        return self.engine.closed

    def release(self) -> None:
        """Free the engine's memory for this version."""
        self.engine.close()


def load_version(
    source: RulesetSource, *, isolated: bool = True, limits: Limits | None = None
) -> LoadedVersion:
    """Compile a version and register it with the engine.

    With `isolated`, the definition is first compiled and run in a child process, so
    that a ruleset that would crash or hang the engine is refused before it is loaded
    here.
    """
    program = compile_ruleset(source)
    with _serial_lock:
        name = f"{source.name}@{source.version}#{next(_serial)}"
    if isolated:
        check_isolated(name, program.definition, program.smoke_facts())
    engine = EngineRuleset(name, program.definition)
    return LoadedVersion(program, engine, limits or Limits())
