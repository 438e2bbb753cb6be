"""Reading the test cases beside a ruleset: a lead, an as_of and what to expect."""

from __future__ import annotations

from datetime import UTC, datetime

from leadgate.activity import parse_age
from leadgate.errors import RulesetError
from leadgate.ruleset import ActivityRecord, Expectation, RuleTest
from leadgate.yamlfile import (
    LineDict,
    check_keys,
    child_mapping,
    error_at,
    read_points,
    read_stage,
    required_text,
)


def read_tests(items: object, doc: LineDict, path: str) -> tuple[RuleTest, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise error_at(doc, "tests", "'tests' must be a list of test cases")
    return tuple(_test(item, doc, path) for item in items)


def _test(item: object, doc: LineDict, path: str) -> RuleTest:
    if not isinstance(item, LineDict):
        raise error_at(
            doc, "tests", "each test is a mapping with name, as_of, lead, expect"
        )
    check_keys(item, ("name", "as_of", "lead", "expect", "prior_stage"), "a test")
    name = required_text(item, "name")
    try:
        as_of = _timestamp(item.get("as_of"))
        lead = child_mapping(item, "lead")
        if "prior_stage" in lead:
            raise error_at(
                lead, "prior_stage", "prior_stage goes beside lead, not in it"
            )
        check_keys(lead, ("attributes", "activities"), "a test lead")
        activities = tuple(
            _test_activity(a, as_of, lead) for a in lead.get("activities") or []
        )
        prior = item.get("prior_stage")
        return RuleTest(
            name=name,
            as_of=as_of,
            attributes=dict(child_mapping(lead, "attributes")),
            activities=activities,
            expect=_expectation(child_mapping(item, "expect")),
            line=item.line,
            path=path,
            prior_stage=read_stage(item, "prior_stage", prior) if prior else None,
        )
    except RulesetError as error:
        raise RulesetError(
            f"test '{name}': {error.message}", path=path, line=error.line or item.line
        ) from None


def _timestamp(value: object) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise RulesetError(f"'{value}' is not an ISO 8601 time") from None
    if not isinstance(value, datetime):
        raise RulesetError("'as_of' must be a time such as 2026-12-01T12:00:00Z")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _test_activity(item: object, as_of: datetime, lead: LineDict) -> ActivityRecord:
    if not isinstance(item, LineDict):
        raise error_at(
            lead, "activities", "each activity is a mapping with type and ago"
        )
    check_keys(item, ("type", "ago", "occurred_at", "id"), "an activity")
    if "ago" in item:
        try:
            at = as_of - parse_age(str(item["ago"]))
        except OverflowError:
            raise error_at(item, "ago", "that age reaches before the year 1") from None
    else:
        at = _timestamp(item.get("occurred_at"))
    return ActivityRecord(str(item.get("type") or ""), at, str(item.get("id") or ""))


def _expectation(expect: LineDict) -> Expectation:
    check_keys(expect, ("stage", "score", "fired", "not_fired", "derived"), "'expect'")
    score = child_mapping(expect, "score")
    for key in ("fired", "not_fired"):
        value = expect.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise error_at(expect, key, f"'{key}' is a list of rule ids")
    return Expectation(
        stage=read_stage(expect, "stage", expect.get("stage")),
        score={category: read_points(score, category) for category in score},
        fired=tuple(expect.get("fired", [])),
        not_fired=tuple(expect.get("not_fired", [])),
        derived=dict(child_mapping(expect, "derived")),
    )
