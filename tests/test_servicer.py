"""Tests for the servicers called in-process with a fake context, without a network."""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn, cast

import grpc
import pytest
import structlog
from google.protobuf import json_format, struct_pb2
from google.rpc import error_details_pb2, status_pb2

from leadgate.servicer import FIELD_KEY, QualificationServicer, RulesetServicer
from leadgate.store import RulesStore
from leadgate_client import to_request
from leadgate_client.v1 import qualification_pb2 as pb
from leadgate_client.v1 import ruleset_pb2 as rpb

REPO = pathlib.Path(__file__).resolve().parent.parent
LEAD: dict[str, Any] = json.loads(
    (REPO / "tests" / "data" / "srv_lead.json").read_text(encoding="utf-8")
)
AS_OF = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CLOCK_TIME = datetime(2027, 3, 4, 5, 6, 7, tzinfo=UTC)
DETAILS_KEY = "grpc-status-details-bin"

# The lead in srv_lead.json against rules/b2b_default.yaml, worked out by hand:
# fit        = size-large 20 + target-industry 10 + revenue-50m-plus 10 + core-market
#              7.5 + fit-decision-maker 15 = 62.5, capped at 50
# engagement = webinar-attended 15 (10 days ago; 2 actions this week, no uptick)
# intent     = demo-request 30 (one pricing view is not two; one colleague is no
#              committee)
# total      = 50 + 15 + 30 = 95: BANT holds, and 95 >= 90 with intent 30 is SQL too.
FIRED = {
    "senior-role",
    "persona-decision-maker",
    "size-large",
    "target-industry",
    "revenue-50m-plus",
    "core-market",
    "fit-decision-maker",
    "webinar-attended",
    "demo-request",
    "bant-budget",
    "bant-authority",
    "bant-need",
    "bant-timeline",
    "bant-qualified",
    "sales-ready-bant",
    "sales-ready-score",
    "marketing-ready",
}
DERIVED = {
    "senior_role": True,
    "persona": "decision_maker",
    "budget": True,
    "authority": True,
    "need": True,
    "timeline": True,
    "bant_qualified": True,
}


class AbortedError(Exception):
    """Raised by FakeContext when a servicer aborts, as grpc's own context does."""


class FakeContext:
    """Just enough of grpc.ServicerContext to record how a call ended."""

    def __init__(self, remaining: float | None = 30.0, active: bool = True) -> None:
        self.remaining = remaining
        self.active = active
        self.code: grpc.StatusCode | None = None
        self.details = ""
        self.trailing: tuple[tuple[str, str | bytes], ...] = ()

    def time_remaining(self) -> float | None:
        return self.remaining

    def is_active(self) -> bool:
        return self.active

    def set_trailing_metadata(
        self, metadata: Sequence[tuple[str, str | bytes]]
    ) -> None:
        self.trailing = tuple(metadata)

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self.code = code
        self.details = details
        raise AbortedError(details)

    def abort_with_status(self, status: grpc.Status) -> NoReturn:
        self.set_trailing_metadata(status.trailing_metadata)
        self.abort(status.code, status.details)

    def metadata(self, key: str) -> str | bytes | None:
        """The value of one trailing metadata key, or None."""
        return next((value for name, value in self.trailing if name == key), None)

    def violations(self) -> list[str]:
        """The field paths of the BadRequest detail in the rich status, if any."""
        raw = self.metadata(DETAILS_KEY)
        assert isinstance(raw, bytes)
        status = status_pb2.Status.FromString(raw)
        fields: list[str] = []
        for detail in status.details:
            request = error_details_pb2.BadRequest()
            assert detail.Unpack(request)
            fields.extend(violation.field for violation in request.field_violations)
        return fields


def as_context(context: FakeContext) -> grpc.ServicerContext:
    """The fake as the type the servicers expect."""
    return cast(grpc.ServicerContext, context)


def plain(value: struct_pb2.Value) -> Any:
    """A protobuf Value as the Python value it holds."""
    return json_format.MessageToDict(value)


def request_for(lead: dict[str, Any], **changes: Any) -> pb.QualifyRequest:
    """A QualifyRequest from a plain lead with some top-level fields replaced."""
    return to_request({**lead, **changes})


def qualify(
    store: RulesStore, request: pb.QualifyRequest, context: FakeContext | None = None
) -> pb.Decision:
    """Decide through the servicer with a fixed clock."""
    servicer = QualificationServicer(store, clock=lambda: CLOCK_TIME)
    return servicer.Qualify(request, as_context(context or FakeContext()))


def refuse(
    store: RulesStore, request: pb.QualifyRequest, **context: Any
) -> FakeContext:
    """Call Qualify expecting an abort; return the context that recorded it."""
    fake = FakeContext(**context)
    with pytest.raises(AbortedError):
        qualify(store, request, fake)
    return fake


def batch(
    store: RulesStore, requests: Sequence[pb.QualifyRequest], context: FakeContext
) -> pb.QualifyBatchResponse:
    """Decide a batch through the servicer."""
    servicer = QualificationServicer(store, clock=lambda: CLOCK_TIME)
    message = pb.QualifyBatchRequest(requests=requests)
    return servicer.QualifyBatch(message, as_context(context))


def test_qualify_decides_a_lead_as_worked_out_by_hand(store: RulesStore) -> None:
    """The shipped lead gets the stage, owner, scores and rules computed by hand."""
    decision = qualify(store, request_for(LEAD))

    assert (decision.lead_id, decision.stage, decision.owner) == (
        "srv-sql-1",
        pb.STAGE_SQL,
        "sales",
    )
    assert decision.computed_stage == pb.STAGE_SQL
    assert [(s.category, s.exact, s.uncapped) for s in decision.scores] == [
        ("engagement", "15", "15"),
        ("fit", "50", "62.5"),
        ("intent", "30", "30"),
    ]
    assert (decision.total_score, decision.total_score_exact) == (95.0, "95")
    assert {rule.rule_id for rule in decision.fired_rules} == FIRED
    assert len(decision.fired_rules) == len(FIRED)
    assert {fact.name: plain(fact.value) for fact in decision.derived_facts} == DERIVED
    assert list(decision.warnings) == [
        "missing attribute 'seniority' read by rules: senior-role",
        "missing attribute 'student' read by rules: student-or-intern",
    ]
    assert (decision.ruleset, decision.version) == ("b2b_default", "2026.12.0")
    assert decision.as_of.ToDatetime(tzinfo=UTC) == AS_OF
    assert re.fullmatch(r"[0-9a-f]{32}", decision.decision_id)


def test_qualify_reports_rules_in_firing_order_with_their_facts(
    store: RulesStore,
) -> None:
    """Rules appear after the rules they depend on, with points and matched facts."""
    decision = qualify(store, request_for(LEAD))
    fired = {rule.rule_id: rule for rule in decision.fired_rules}
    order = list(fired)

    for before, after in [
        ("senior-role", "persona-decision-maker"),
        ("persona-decision-maker", "fit-decision-maker"),
        ("bant-authority", "bant-qualified"),
        ("bant-qualified", "sales-ready-bant"),
    ]:
        assert order.index(before) < order.index(after)
    assert set(order[-2:]) == {"sales-ready-score", "marketing-ready"}
    assert dict(fired["core-market"].points) == {"fit": "7.5"}
    assert list(fired["core-market"].actions) == ["score"]
    assert [(fact.name, plain(fact.value)) for fact in fired["size-large"].matched] == [
        ("employees", 350)
    ]
    assert fired["sales-ready-bant"].reason == (
        "Budget, authority, need and timeline all check out"
    )


def test_qualify_summary_omits_fired_rules_and_derived_facts(
    store: RulesStore,
) -> None:
    """explain=SUMMARY gives the same stage and scores without the explanation."""
    full = qualify(store, request_for(LEAD))
    summary = qualify(store, request_for(LEAD, explain="SUMMARY"))

    assert list(summary.fired_rules) == []
    assert list(summary.derived_facts) == []
    assert (summary.stage, summary.total_score_exact) == (pb.STAGE_SQL, "95")
    assert list(summary.scores) == list(full.scores)
    assert list(summary.reasons) == list(full.reasons)


def test_qualify_defaults_as_of_to_the_clock(store: RulesStore) -> None:
    """A request without as_of is decided at the servicer's clock, echoed back."""
    lead = {key: value for key, value in LEAD.items() if key != "as_of"}

    decision = qualify(store, request_for(lead))

    assert decision.as_of.ToDatetime(tzinfo=UTC) == CLOCK_TIME


@pytest.mark.parametrize(
    ("changes", "ruleset", "version"),
    [
        ({"version": "2026.12.0"}, "b2b_default", "2026.12.0"),
        ({"ruleset": "x_education"}, "x_education", "2026.12.0"),
    ],
)
def test_qualify_uses_the_named_ruleset_and_pinned_version(
    store: RulesStore, changes: dict[str, str], ruleset: str, version: str
) -> None:
    """A named ruleset or a pinned version answers the call and is echoed."""
    decision = qualify(store, request_for({"lead_id": "l1"}, **changes))

    assert (decision.ruleset, decision.version) == (ruleset, version)


def far_as_of() -> pb.QualifyRequest:
    """A request whose as_of lies past the year 9999."""
    request = request_for(LEAD)
    request.as_of.seconds = 10**12
    return request


def unknown_prior_stage() -> pb.QualifyRequest:
    """A request whose prior_stage is a number the Stage enum does not define."""
    request = request_for(LEAD)
    request.prior_stage = cast(pb.Stage.ValueType, 9)
    return request


def attributes(**changes: Any) -> pb.QualifyRequest:
    """The shipped lead with some attributes replaced."""
    return request_for(LEAD, attributes={**LEAD["attributes"], **changes})


UNTIMED = {"type": "site_visit"}
VISIT = {"type": "site_visit", "occurred_at": "2026-11-30T12:00:00Z"}


@pytest.mark.parametrize(
    ("request_message", "field", "problem"),
    [
        (
            attributes(employees="lots"),
            "attributes.employees",
            'expected a whole number or a range such as "51-200" or "10000+"',
        ),
        (attributes(email=5), "attributes.email", "expected text, got a number"),
        (
            attributes(country="Atlantis"),
            "attributes.country",
            "not an ISO 3166 country code or English name",
        ),
        (far_as_of(), "as_of", "not a valid timestamp"),
        (
            request_for(LEAD, activities=[VISIT, UNTIMED]),
            "activities[1].occurred_at",
            "an activity needs a time",
        ),
        (
            request_for(LEAD, activities=[{"occurred_at": VISIT["occurred_at"]}]),
            "activities[0].type",
            "an activity needs a type",
        ),
        (unknown_prior_stage(), "prior_stage", "not a known stage"),
        (request_for(LEAD, lead_id="x" * 257), "lead_id", "longer than 256 characters"),
    ],
    ids=[
        "employees",
        "email",
        "country",
        "as_of",
        "occurred_at",
        "type",
        "prior_stage",
        "lead_id",
    ],
)
def test_qualify_refuses_a_bad_lead_naming_the_field(
    store: RulesStore, request_message: pb.QualifyRequest, field: str, problem: str
) -> None:
    """A bad lead is INVALID_ARGUMENT naming its field in details and metadata."""
    context = refuse(store, request_message)

    assert context.code is grpc.StatusCode.INVALID_ARGUMENT
    assert context.details == f"{field}: {problem}"
    assert context.metadata(FIELD_KEY) == field
    assert context.violations() == [field]


@pytest.mark.parametrize(
    "email",
    ["dana.reyes@acme-analytics", "dana reyes@acme-analytics.com", "dana@@acme.com"],
)
def test_qualify_keeps_a_bad_email_out_of_the_error(
    store: RulesStore, email: str
) -> None:
    """A malformed e-mail address is refused without echoing it anywhere."""
    with structlog.testing.capture_logs() as logs:
        context = refuse(store, attributes(email=email))

    assert context.code is grpc.StatusCode.INVALID_ARGUMENT
    assert context.metadata(FIELD_KEY) == "attributes.email"
    sent = context.details.encode() + b"".join(
        value if isinstance(value, bytes) else value.encode()
        for _, value in context.trailing
    )
    assert email.encode() not in sent
    assert b"dana" not in sent
    assert "dana" not in repr(logs)
    assert [(e["event"], e["code"], e["field"]) for e in logs] == [
        ("decision.refused", "INVALID_ARGUMENT", "attributes.email")
    ]


@pytest.mark.parametrize(
    ("changes", "details"),
    [
        (
            {"ruleset": "b2b_premium"},
            "unknown ruleset 'b2b_premium' (loaded: b2b_default, x_education)",
        ),
        (
            {"version": "2025.1.0"},
            "ruleset 'b2b_default' has no version '2025.1.0' (loaded: 2026.12.0)",
        ),
        (
            {"ruleset": "x_education", "version": "9.9"},
            "ruleset 'x_education' has no version '9.9' (loaded: 2026.12.0)",
        ),
    ],
)
def test_qualify_unknown_ruleset_or_version_is_not_found(
    store: RulesStore, changes: dict[str, str], details: str
) -> None:
    """A ruleset or version that is not loaded is NOT_FOUND, naming what is."""
    context = refuse(store, request_for(LEAD, **changes))

    assert context.code is grpc.StatusCode.NOT_FOUND
    assert context.details == details
    assert context.metadata(FIELD_KEY) is None


def test_qualify_without_a_loaded_ruleset_is_failed_precondition(
    tmp_path: pathlib.Path,
) -> None:
    """A store with nothing loaded refuses calls as FAILED_PRECONDITION."""
    empty = RulesStore(tmp_path, isolated=False)

    context = refuse(empty, request_for(LEAD))

    assert context.code is grpc.StatusCode.FAILED_PRECONDITION
    assert context.details == "no valid version of 'b2b_default' is loaded"


def test_qualify_batch_keeps_errors_in_their_slots(store: RulesStore) -> None:
    """Bad leads of a batch get errors in their own slots, in request order."""
    context = FakeContext()
    requests = [
        request_for(LEAD, lead_id="b1"),
        request_for(
            {"lead_id": "b2", "attributes": {"employees": "lots"}}, as_of=LEAD["as_of"]
        ),
        request_for({"lead_id": "b3", "ruleset": "b2b_premium"}),
        request_for({"lead_id": "b4", "attributes": {"email": "kim@gmail.com"}}),
    ]

    response = batch(store, requests, context)

    assert context.code is None
    assert [result.WhichOneof("result") for result in response.results] == [
        "decision",
        "error",
        "error",
        "decision",
    ]
    first, second, third, fourth = response.results
    assert (first.decision.lead_id, first.decision.stage) == ("b1", pb.STAGE_SQL)
    assert (second.error.code, second.error.field) == (3, "attributes.employees")
    assert second.error.message.startswith("attributes.employees: ")
    assert (third.error.code, third.error.field) == (5, "")
    assert (fourth.decision.lead_id, fourth.decision.stage) == (
        "b4",
        pb.STAGE_DISQUALIFIED,
    )


@pytest.mark.parametrize("size", [1001, 5000])
def test_qualify_batch_over_the_limit_is_resource_exhausted(
    store: RulesStore, size: int
) -> None:
    """A batch of more than 1000 leads is refused whole as RESOURCE_EXHAUSTED."""
    context = FakeContext()

    with pytest.raises(AbortedError):
        batch(store, [pb.QualifyRequest()] * size, context)

    assert context.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert context.details == f"a batch holds at most 1000 leads, got {size}"


def test_qualify_batch_of_exactly_the_limit_is_decided(store: RulesStore) -> None:
    """A batch of exactly 1000 leads is decided, one result per lead."""
    context = FakeContext()

    response = batch(store, [pb.QualifyRequest(lead_id="e")] * 1000, context)

    assert context.code is None
    assert len(response.results) == 1000
    assert {r.decision.stage for r in response.results} == {pb.STAGE_LEAD}


@pytest.mark.parametrize("remaining", [0.0, -1.0])
@pytest.mark.parametrize("method", ["Qualify", "QualifyBatch"])
def test_qualify_past_the_deadline_is_deadline_exceeded(
    store: RulesStore, remaining: float, method: str
) -> None:
    """A call with no time left ends as DEADLINE_EXCEEDED, in a batch too."""
    servicer = QualificationServicer(store)
    context = FakeContext(remaining=remaining)
    request = request_for(LEAD)
    message = (
        request if method == "Qualify" else pb.QualifyBatchRequest(requests=[request])
    )

    with pytest.raises(AbortedError):
        getattr(servicer, method)(message, as_context(context))

    assert context.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert context.details == "deadline passed before deciding"


def fail_to_resolve(name: str = "", version: str = "") -> NoReturn:
    """Stand in for the store's lookup with an error nobody planned for."""
    raise RuntimeError("resolver broke at /srv/leadgate/secret.py line 7")


def test_qualify_turns_an_unexpected_error_into_internal(
    store: RulesStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unplanned exception is INTERNAL "internal error", never with its traceback."""
    monkeypatch.setattr(store, "_resolve", fail_to_resolve)

    with structlog.testing.capture_logs() as logs:
        context = refuse(store, request_for(LEAD))

    assert context.code is grpc.StatusCode.INTERNAL
    assert context.details == "internal error"
    assert context.metadata(FIELD_KEY) is None
    shown = repr(context.trailing)
    for leak in ("Traceback", "RuntimeError", "secret.py", "resolver broke"):
        assert leak not in shown
    assert [(e["event"], e["log_level"]) for e in logs] == [("call.failed", "error")]


def test_qualify_batch_turns_an_unexpected_error_into_internal_slots(
    store: RulesStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unplanned exception in a batch puts INTERNAL in every failing slot."""
    monkeypatch.setattr(store, "_resolve", fail_to_resolve)
    context = FakeContext()

    response = batch(store, [request_for(LEAD)] * 2, context)

    assert context.code is None
    assert [(r.error.code, r.error.message) for r in response.results] == [
        (13, "internal error"),
        (13, "internal error"),
    ]


def test_qualify_logs_one_decision_event_without_attribute_values(
    store: RulesStore,
) -> None:
    """Each Qualify call logs exactly one `decision` event holding ids, no values."""
    with structlog.testing.capture_logs() as logs:
        decision = qualify(store, request_for(LEAD))

    assert [event["event"] for event in logs] == ["decision"]
    event = logs[0]
    assert set(event) == {
        "event",
        "log_level",
        "lead_id",
        "decision_id",
        "ruleset",
        "version",
        "stage",
        "fired",
        "duration_ms",
    }
    assert (event["lead_id"], event["decision_id"]) == (
        "srv-sql-1",
        decision.decision_id,
    )
    assert (event["ruleset"], event["version"], event["stage"]) == (
        "b2b_default",
        "2026.12.0",
        "SQL",
    )
    assert event["fired"] == len(FIRED)
    assert event["duration_ms"] >= 0
    logged = repr(event).lower()
    for name in ("email", "title", "industry", "purchase_timeline"):
        assert LEAD["attributes"][name].lower() not in logged


def test_list_rulesets_shows_the_shipped_versions(store: RulesStore) -> None:
    """Both shipped rulesets are listed with their active version and source."""
    listing = RulesetServicer(store).ListRulesets(
        rpb.ListRulesetsRequest(), as_context(FakeContext())
    )

    assert listing.default_ruleset == "b2b_default"
    assert list(listing.errors) == []
    assert [(r.name, r.active_version) for r in listing.rulesets] == [
        ("b2b_default", "2026.12.0"),
        ("x_education", "2026.12.0"),
    ]
    rows = [
        (v.version, v.active, v.source_path, v.rule_count)
        for r in listing.rulesets
        for v in r.versions
    ]
    assert rows == [
        ("2026.12.0", True, str(REPO / "rules" / "b2b_default.yaml"), 35),
        ("2026.12.0", True, str(REPO / "rules" / "x_education.yaml"), 28),
    ]
    for ruleset in listing.rulesets:
        (version,) = ruleset.versions
        assert re.fullmatch(r"[0-9a-f]{64}", version.content_hash)
        assert version.loaded_at.ToDatetime(tzinfo=UTC) <= datetime.now(UTC)
        assert ruleset.description


def test_list_rulesets_hash_matches_the_decisions(store: RulesStore) -> None:
    """The listed content hash is the one decisions of that version carry."""
    listing = RulesetServicer(store).ListRulesets(
        rpb.ListRulesetsRequest(), as_context(FakeContext())
    )

    decision = qualify(store, request_for(LEAD))

    assert listing.rulesets[0].versions[0].content_hash == decision.content_hash


def test_qualify_batch_stops_when_the_caller_cancels(store: RulesStore) -> None:
    """A batch whose caller went away stops with CANCELLED instead of deciding on."""
    servicer = QualificationServicer(store)
    context = FakeContext(active=False)
    batch = pb.QualifyBatchRequest(requests=[request_for(LEAD)] * 3)

    with structlog.testing.capture_logs() as logs, pytest.raises(AbortedError):
        servicer.QualifyBatch(batch, context)  # type: ignore[arg-type]

    assert context.code is grpc.StatusCode.CANCELLED
    assert [event["event"] for event in logs] == []
