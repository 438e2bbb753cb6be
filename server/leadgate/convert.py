"""Translation between the gRPC messages and the domain: requests in, decisions out."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from leadgate.activity import MAX_ACTIVITIES
from leadgate.decision import MAX_ATTRIBUTES, Decision, LeadInput
from leadgate.errors import LeadInputError, RulesetError
from leadgate.ruleset import ActivityRecord, Stage
from leadgate.version import LoadedVersion
from leadgate_client.v1 import qualification_pb2 as pb
from leadgate_client.v1 import ruleset_pb2 as rpb

MAX_LEAD_ID = 256
STAGE_TO_PROTO = {
    Stage.DISQUALIFIED: pb.STAGE_DISQUALIFIED,
    Stage.LEAD: pb.STAGE_LEAD,
    Stage.MQL: pb.STAGE_MQL,
    Stage.SQL: pb.STAGE_SQL,
}
STAGE_FROM_PROTO = {int(number): stage for stage, number in STAGE_TO_PROTO.items()}


def lead_from_proto(request: pb.QualifyRequest, now: datetime) -> LeadInput:
    """Read a request into a LeadInput, raising LeadInputError naming the field."""
    if len(request.lead_id) > MAX_LEAD_ID:
        raise LeadInputError("lead_id", f"longer than {MAX_LEAD_ID} characters")
    # Counted before anything is converted, so an oversized lead costs next to nothing.
    if len(request.attributes.fields) > MAX_ATTRIBUTES:
        raise LeadInputError("attributes", f"more than {MAX_ATTRIBUTES} attributes")
    if len(request.activities) > MAX_ACTIVITIES:
        raise LeadInputError("activities", f"more than {MAX_ACTIVITIES} activities")
    attributes = {
        name: _plain(value) for name, value in request.attributes.fields.items()
    }
    activities = tuple(
        ActivityRecord(
            type=activity.type,
            occurred_at=_time(activity.occurred_at, f"activities[{index}].occurred_at")
            if activity.HasField("occurred_at")
            else None,
            id=activity.id,
        )
        for index, activity in enumerate(request.activities)
    )
    as_of = _time(request.as_of, "as_of") if request.HasField("as_of") else now
    return LeadInput(
        lead_id=request.lead_id,
        attributes=attributes,
        activities=activities,
        as_of=as_of,
        prior_stage=_prior_stage(request.prior_stage),
    )


def _plain(value: struct_pb2.Value) -> object:
    """A protobuf Value as plain Python, several times faster than json_format."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return {k: _plain(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_plain(v) for v in value.list_value.values]
    if kind is None or kind == "null_value":
        return None
    return getattr(value, kind)


def _time(stamp: timestamp_pb2.Timestamp, field: str) -> datetime:
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        raise LeadInputError(field, "not a valid timestamp") from None


def _prior_stage(number: int) -> Stage | None:
    if number == pb.STAGE_UNSPECIFIED:
        return None
    if number not in STAGE_FROM_PROTO:
        raise LeadInputError("prior_stage", "not a known stage")
    return STAGE_FROM_PROTO[number]


def decision_to_proto(
    decision: Decision,
    *,
    full: bool,
    service: str,
    engine: str,
    into: pb.Decision | None = None,
) -> pb.Decision:
    """Write a decision as the API's message; `full` adds fired rules and facts.

    With `into`, the decision is written into that (empty) message, such as a slot
    of a batch response, rather than copied there afterwards.
    """
    message = pb.Decision() if into is None else into
    message.lead_id = decision.lead_id
    message.stage = STAGE_TO_PROTO[decision.stage]
    message.computed_stage = STAGE_TO_PROTO[decision.computed_stage]
    message.owner = decision.owner
    message.total_score = float(decision.total)
    message.total_score_exact = _exact(decision.total)
    message.reasons.extend(decision.reasons)
    message.warnings.extend(decision.warnings)
    message.ruleset = decision.ruleset
    message.version = decision.version
    message.content_hash = decision.content_hash
    message.decision_id = decision.decision_id
    message.service_version = service
    message.engine_version = engine
    message.as_of.FromDatetime(decision.as_of)
    for score in decision.scores:
        message.scores.add(
            category=score.category,
            points=float(score.points),
            exact=_exact(score.points),
            uncapped=_exact(score.uncapped),
        )
    if full:
        _explain(decision, message)
    return message


def _explain(decision: Decision, message: pb.Decision) -> None:
    for firing in decision.fired:
        fired = message.fired_rules.add(
            rule_id=firing.rule_id,
            points={c: _exact(p) for c, p in firing.points.items()},
            reason=firing.reason,
            actions=list(firing.actions),
        )
        for name, value in firing.matched:
            fired.matched.add(name=name, value=to_value(value))
    for fact in decision.derived:
        message.derived_facts.add(
            name=fact.name, value=to_value(fact.value), rule_id=fact.rule_id
        )


def _exact(number: Decimal) -> str:
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


def to_value(value: Any) -> struct_pb2.Value:
    """A plain Python value as a protobuf Value."""
    result = struct_pb2.Value()
    if value is None:
        result.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        result.bool_value = value
    elif isinstance(value, int | float | Decimal):
        result.number_value = float(value)
    elif isinstance(value, list | tuple):
        result.list_value.values.extend(to_value(item) for item in value)
    else:
        result.string_value = str(value)
    return result


def rulesets_to_proto(
    rulesets: Mapping[str, list[LoadedVersion]],
    errors: tuple[RulesetError, ...],
    default: str,
) -> rpb.ListRulesetsResponse:
    """Describe the loaded rulesets for the admin API."""
    response = rpb.ListRulesetsResponse(default_ruleset=default)
    for name, versions in rulesets.items():
        entry = response.rulesets.add(
            name=name,
            active_version=versions[0].source.version if versions else "",
            description=versions[0].source.description if versions else "",
        )
        for index, version in enumerate(versions):
            item = entry.versions.add(
                version=version.source.version,
                content_hash=version.source.content_hash,
                source_path=version.source.path,
                active=index == 0,
                rule_count=len(version.source.rules),
            )
            item.loaded_at.FromDatetime(version.loaded_at)
    for error in errors:
        response.errors.add(
            source_path=error.path,
            line=error.line,
            rule_id=error.rule_id,
            message=error.describe(),
        )
    return response
