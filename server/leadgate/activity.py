"""Activities: cleaning what a lead did, and counting it in windows back from as_of."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from leadgate.errors import LeadInputError, RulesetError
from leadgate.ruleset import ActivityRecord

SEPARATORS = re.compile(r"[\s\-]+")
AGE = re.compile(r"(\d{1,6})([mhdw])")
UNIT = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_ACTIVITIES = 10_000
NAMED = 10  # undeclared types listed one by one in warnings; the rest are counted


@dataclass(frozen=True)
class Activity:
    """A cleaned activity: a declared type and an age counted back from as_of."""

    type: str
    age: timedelta


@dataclass(frozen=True)
class Activities:
    """The activities that count for one evaluation, with what was set aside."""

    items: tuple[Activity, ...]
    warnings: tuple[str, ...]

    def count(
        self, activity: str, min_age: timedelta, max_age: timedelta | None
    ) -> int:
        """Count activities of a type (or of "any") with min_age <= age < max_age."""
        return sum(
            1
            for item in self.items
            if (activity == "any" or item.type == activity)
            and item.age >= min_age
            and (max_age is None or item.age < max_age)
        )


def parse_age(text: str) -> timedelta:
    """Read an age such as 2d, 12h, 30m or 3w."""
    match = AGE.fullmatch(text.strip())
    if not match:
        raise RulesetError(f"'{text}' is not an age such as 2d, 12h or 3w")
    return timedelta(**{UNIT[match[2]]: int(match[1])})


def activity_type(text: str) -> str:
    """The type name an activity is matched by: "Demo Request" is demo_request."""
    return SEPARATORS.sub("_", unicodedata.normalize("NFC", text).strip().casefold())


def clean_activities(
    records: Sequence[ActivityRecord], declared: Iterable[str], as_of: datetime
) -> Activities:
    """Check activities, drop duplicates, set aside future and undeclared ones."""
    if len(records) > MAX_ACTIVITIES:
        raise LeadInputError("activities", f"more than {MAX_ACTIVITIES} activities")
    known = frozenset(declared)
    seen: set[tuple[str, datetime, str]] = set()
    items: list[Activity] = []
    future, unknown = 0, set()
    for index, record in enumerate(records):
        field = f"activities[{index}]"
        if not record.type.strip():
            raise LeadInputError(f"{field}.type", "an activity needs a type")
        if record.occurred_at is None:
            raise LeadInputError(f"{field}.occurred_at", "an activity needs a time")
        kind = activity_type(record.type)
        key = (kind, record.occurred_at, record.id)
        if key in seen:
            continue
        seen.add(key)
        if kind not in known:
            unknown.add(kind[:64])
        elif record.occurred_at > as_of:
            future += 1
        else:
            items.append(Activity(kind, as_of - record.occurred_at))
    return Activities(tuple(items), _warnings(future, unknown))


def _warnings(future: int, unknown: set[str]) -> tuple[str, ...]:
    warnings = []
    if future:
        warnings.append(f"{future} activities after as_of ignored")
    names = sorted(unknown)
    for name in names[:NAMED]:
        warnings.append(f"undeclared activity type '{name}' ignored")
    if len(names) > NAMED:
        warnings.append(f"{len(names) - NAMED} more undeclared activity types ignored")
    return tuple(warnings)
