"""The ruleset model: a ruleset version as read from its file, before compiling."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from leadgate.schema import Schema, Value


class Stage(enum.IntEnum):
    """How far a lead has come; a higher number is a higher stage."""

    DISQUALIFIED = 1
    LEAD = 2
    MQL = 3
    SQL = 4


@dataclass(frozen=True)
class Action:
    """What a rule does when it fires."""

    disqualify: str | None = None
    stage: Stage | None = None
    score: Mapping[str, Decimal] = field(default_factory=dict)
    derive: Mapping[str, Value] = field(default_factory=dict)
    recycle: bool = False
    reason: str = ""

    @property
    def kinds(self) -> list[str]:
        """The names of what this action does, for explanations."""
        kinds = [
            ("disqualify", self.disqualify is not None),
            ("stage", self.stage is not None),
            ("score", bool(self.score)),
            ("derive", bool(self.derive)),
            ("recycle", self.recycle),
        ]
        return [name for name, present in kinds if present]


@dataclass(frozen=True)
class RuleSpec:
    """One rule as written: id, condition and action, with its place in the file."""

    id: str
    when: str
    then: Action
    line: int
    when_line: int
    description: str = ""


@dataclass(frozen=True)
class ActivityRecord:
    """One activity of a lead as sent, before cleaning."""

    type: str
    occurred_at: datetime | None
    id: str = ""


@dataclass(frozen=True)
class Expectation:
    """What a rule test expects of the decision."""

    stage: Stage
    score: Mapping[str, Decimal] = field(default_factory=dict)
    fired: tuple[str, ...] = ()
    not_fired: tuple[str, ...] = ()
    derived: Mapping[str, Value] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleTest:
    """A lead, an as_of and the decision a ruleset must give for it."""

    name: str
    as_of: datetime
    attributes: Mapping[str, object]
    activities: tuple[ActivityRecord, ...]
    expect: Expectation
    line: int
    path: str
    prior_stage: Stage | None = None


@dataclass(frozen=True)
class RulesetSource:
    """One ruleset version as read from its file: everything the compiler needs."""

    name: str
    version: str
    description: str
    schema: Schema
    lists: Mapping[str, tuple[Value, ...]]
    routing: Mapping[Stage, str]
    caps: Mapping[str, Decimal]
    rules: tuple[RuleSpec, ...]
    tests: tuple[RuleTest, ...]
    path: str
    content_hash: str

    @property
    def version_key(self) -> tuple[int, ...]:
        """The version as numbers, so that 2026.12.10 sorts after 2026.12.9."""
        return tuple(int(part) for part in self.version.split("."))
