"""Building small rulesets from YAML text and deciding leads with them, for tests."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from leadgate.decision import Decision, LeadInput
from leadgate.loader import load_text
from leadgate.ruleset import ActivityRecord, Stage
from leadgate.version import Limits, LoadedVersion, load_version

AS_OF = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

HEADER = """
ruleset: kit
version: "1.0"
facts:
  email:     {type: email}
  title:     {type: text, fold: true}
  industry:  {type: keyword}
  country:   {type: country}
  employees: {type: count}
  revenue:   {type: number}
  student:   {type: boolean}
activities: [pricing_view, demo_request, webinar, chat]
lists:
  free_mail: [gmail.com, yahoo.com]
"""


def ruleset_text(rules: str, *, extra: str = "", header: str = HEADER) -> str:
    """A complete ruleset file: the shared schema, extra top-level keys, the rules."""
    body = textwrap.indent(textwrap.dedent(rules).strip(), "  ")
    return textwrap.dedent(header) + textwrap.dedent(extra) + "rules:\n" + body + "\n"


@contextmanager
def version_of(
    rules: str, *, extra: str = "", header: str = HEADER, limits: Limits | None = None
) -> Iterator[LoadedVersion]:
    """Load a ruleset in-process for the duration of a test, then release it."""
    version = load_version(
        load_text(ruleset_text(rules, extra=extra, header=header)),
        isolated=False,
        limits=limits,
    )
    try:
        yield version
    finally:
        version.release()


def activity(kind: str, days_ago: float, ident: str = "") -> ActivityRecord:
    """An activity that happened a number of days before AS_OF."""
    return ActivityRecord(kind, AS_OF - timedelta(days=days_ago), ident)


def lead(
    attributes: Mapping[str, Any] | None = None,
    activities: Sequence[ActivityRecord] = (),
    *,
    as_of: datetime = AS_OF,
    prior: Stage | None = None,
) -> LeadInput:
    """A lead for deciding, with defaults that keep tests short."""
    return LeadInput("lead-1", dict(attributes or {}), tuple(activities), as_of, prior)


def fired(decision: Decision) -> list[str]:
    """The ids of the rules that fired, in firing order."""
    return [firing.rule_id for firing in decision.fired]


def scores(decision: Decision) -> dict[str, str]:
    """Capped scores per category and the total, as exact decimal text."""
    result = {s.category: str(s.points) for s in decision.scores}
    result["total"] = str(decision.total)
    return result
