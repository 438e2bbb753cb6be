"""Tests for the Python client against a real gRPC server running a fake servicer."""

from __future__ import annotations

import datetime
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from fakeserver import serving
from google.protobuf import struct_pb2

from leadgate_client import (
    FIELD_METADATA_KEY,
    LeadgateClient,
    LeadgateError,
    decision_to_dict,
    to_request,
)
from leadgate_client.v1 import (
    qualification_pb2,
    qualification_pb2_grpc,
    ruleset_pb2,
    ruleset_pb2_grpc,
)

UTC = datetime.UTC


def decide(request: qualification_pb2.QualifyRequest) -> qualification_pb2.Decision:
    """Return the stage the lead's `want_stage` attribute asks for."""
    fields = request.attributes.fields
    stage = fields["want_stage"].string_value if "want_stage" in fields else "LEAD"
    return qualification_pb2.Decision(
        lead_id=request.lead_id,
        stage=qualification_pb2.Stage.Value(f"STAGE_{stage}"),
        ruleset=request.ruleset or "b2b_default",
        version="v1",
        as_of=request.as_of,
    )


class FakeQualification(qualification_pb2_grpc.QualificationServiceServicer):
    """Decides by `want_stage`, refuses `bad` leads and holds `hang` leads."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def Qualify(  # noqa: N802
        self, request: qualification_pb2.QualifyRequest, context: grpc.ServicerContext
    ) -> qualification_pb2.Decision:
        if "hang" in request.attributes:
            self.release.wait()
        if "bad" in request.attributes:
            context.set_trailing_metadata(
                ((FIELD_METADATA_KEY, "attributes.employees"),)
            )
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown employees band")
        return decide(request)

    def QualifyBatch(  # noqa: N802
        self, request: qualification_pb2.QualifyBatchRequest, context: Any
    ) -> qualification_pb2.QualifyBatchResponse:
        return qualification_pb2.QualifyBatchResponse(
            results=[batch_result(lead) for lead in request.requests]
        )


def batch_result(
    request: qualification_pb2.QualifyRequest,
) -> qualification_pb2.QualifyBatchResult:
    """Return a decision, or for a `bad` lead an error in its slot."""
    if "bad" in request.attributes:
        error = qualification_pb2.LeadError(
            code=3, message="unknown employees band", field="attributes.employees"
        )
        return qualification_pb2.QualifyBatchResult(error=error)
    return qualification_pb2.QualifyBatchResult(decision=decide(request))


class FakeRulesets(ruleset_pb2_grpc.RulesetServiceServicer):
    """Lists one ruleset with one active version."""

    def ListRulesets(  # noqa: N802
        self, request: ruleset_pb2.ListRulesetsRequest, context: Any
    ) -> ruleset_pb2.ListRulesetsResponse:
        version = ruleset_pb2.RulesetVersion(version="v1", active=True, rule_count=4)
        ruleset = ruleset_pb2.Ruleset(
            name="b2b_default", active_version="v1", versions=[version]
        )
        return ruleset_pb2.ListRulesetsResponse(
            rulesets=[ruleset], default_ruleset="b2b_default"
        )


@pytest.fixture
def servicer() -> FakeQualification:
    """Return the fake qualification servicer the server runs."""
    return FakeQualification()


@pytest.fixture
def target(servicer: FakeQualification) -> Iterator[str]:
    """Serve the fakes on a free local port and return its address."""
    with serving(servicer, FakeRulesets()) as address:
        yield address
        servicer.release.set()


@pytest.fixture
def client(target: str) -> Iterator[LeadgateClient]:
    """Return a client connected to the fake server."""
    with LeadgateClient(target, timeout=5.0) as connected:
        yield connected


def lead(lead_id: str, **attributes: Any) -> dict[str, Any]:
    """Return a plain lead dict with the given attributes."""
    return {"lead_id": lead_id, "attributes": attributes}


def test_to_request_converts_timestamps_enums_and_struct_values() -> None:
    """A plain dict becomes a request with timestamps, enums and Struct values set."""
    berlin = datetime.timezone(datetime.timedelta(hours=1))
    request = to_request(
        {
            "lead_id": "l1",
            "attributes": {
                "employees": "51-200",
                "revenue": 1200000,
                "verified": True,
                "phone": None,
                "tags": ["saas", 3],
                "signed_up": datetime.datetime(2026, 11, 2, 9, 30, tzinfo=berlin),
            },
            "activities": [
                {
                    "type": "demo_request",
                    "occurred_at": datetime.datetime(2026, 12, 1, 10, tzinfo=UTC),
                    "properties": {"page": "/pricing"},
                },
                {"type": "webinar", "occurred_at": "2026-12-01T12:00:00+02:00"},
            ],
            "as_of": "2026-12-02T00:00:00Z",
            "ruleset": "b2b_default",
            "version": "",
            "prior_stage": "MQL",
            "explain": "full",
        }
    )

    attributes = request.attributes
    assert attributes["employees"] == "51-200"
    assert attributes["revenue"] == 1200000.0
    assert attributes["verified"] is True
    assert attributes.fields["phone"].null_value == struct_pb2.NULL_VALUE
    assert list(attributes["tags"]) == ["saas", 3.0]
    assert attributes["signed_up"] == "2026-11-02T08:30:00Z"
    assert [a.type for a in request.activities] == ["demo_request", "webinar"]
    assert request.activities[0].occurred_at.ToJsonString() == "2026-12-01T10:00:00Z"
    assert request.activities[0].properties["page"] == "/pricing"
    assert request.activities[1].occurred_at.ToJsonString() == "2026-12-01T10:00:00Z"
    assert request.as_of.ToDatetime(tzinfo=UTC) == datetime.datetime(
        2026, 12, 2, tzinfo=UTC
    )
    assert request.prior_stage == qualification_pb2.STAGE_MQL
    assert request.explain == qualification_pb2.EXPLAIN_LEVEL_FULL
    assert request.ruleset == "b2b_default"


def test_to_request_accepts_full_enum_names() -> None:
    """Full enum names pass through unchanged."""
    request = to_request(
        {"prior_stage": "STAGE_SQL", "explain": "EXPLAIN_LEVEL_SUMMARY"}
    )

    assert request.prior_stage == qualification_pb2.STAGE_SQL
    assert request.explain == qualification_pb2.EXPLAIN_LEVEL_SUMMARY


def test_to_request_passes_a_request_through() -> None:
    """A QualifyRequest is returned as it is."""
    request = qualification_pb2.QualifyRequest(lead_id="l1")

    assert to_request(request) is request


@pytest.mark.parametrize(
    ("lead_data", "field"),
    [
        ({"lead_id": "l1", "colour": "red"}, "colour"),
        ({"lead_id": 7}, "lead_id"),
        ({"as_of": "yesterday"}, "as_of"),
        ({"prior_stage": "HOT"}, "prior_stage"),
        ({"explain": True}, "explain"),
        ({"attributes": ["a@b.io"]}, "attributes"),
        ({"attributes": {"meta": {"seen": object()}}}, "attributes.meta.seen"),
        ({"activities": "demo_request"}, "activities"),
        (
            {"activities": [{"type": "demo", "at": "2026-12-01T10:00:00Z"}]},
            "activities[0].at",
        ),
        (
            {"activities": [{"occurred_at": datetime.datetime(2026, 12, 1)}]},
            "activities[0].occurred_at",
        ),
    ],
)
def test_to_request_names_the_bad_field(lead_data: dict[str, Any], field: str) -> None:
    """Bad input raises ValueError whose message starts with the field path."""
    with pytest.raises(ValueError, match=r"^\S+: ") as raised:
        to_request(lead_data)

    assert str(raised.value).split(": ", 1)[0] == field


def test_to_request_keeps_values_out_of_errors() -> None:
    """An error about a Struct value names its type, not the value itself."""
    with pytest.raises(ValueError, match="attributes: expected a mapping") as raised:
        to_request({"attributes": ["a@b.io"]})

    assert "a@b.io" not in str(raised.value)


def test_qualify_returns_the_servers_decision(client: LeadgateClient) -> None:
    """qualify sends the converted lead and returns the decision."""
    decision = client.qualify(
        {**lead("l1", want_stage="SQL"), "as_of": "2026-12-02T00:00:00Z"}
    )

    assert decision.lead_id == "l1"
    assert decision.stage == qualification_pb2.STAGE_SQL
    assert decision.as_of.ToJsonString() == "2026-12-02T00:00:00Z"


def test_qualify_maps_a_refusal_to_leadgate_error(client: LeadgateClient) -> None:
    """A refused lead raises LeadgateError with the code, details and field."""
    with pytest.raises(LeadgateError) as raised:
        client.qualify(lead("l1", bad=True))

    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details == "unknown employees band"
    assert raised.value.field == "attributes.employees"
    assert str(raised.value) == (
        "INVALID_ARGUMENT: unknown employees band (field attributes.employees)"
    )


def test_qualify_gives_up_at_the_deadline(
    client: LeadgateClient, servicer: FakeQualification
) -> None:
    """A call the server does not answer in time fails with DEADLINE_EXCEEDED."""
    with pytest.raises(LeadgateError) as raised:
        client.qualify(lead("l1", hang=True), timeout=0.05)

    assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert raised.value.field is None


def test_qualify_batch_keeps_order_with_errors_in_their_slots(
    client: LeadgateClient,
) -> None:
    """Batch results come back in request order, a refused lead as a LeadError."""
    results = client.qualify_batch(
        [lead("l1", want_stage="SQL"), lead("l2", bad=True), lead("l3")]
    )

    first, second, third = results
    assert isinstance(first, qualification_pb2.Decision)
    assert (first.lead_id, first.stage) == ("l1", qualification_pb2.STAGE_SQL)
    assert isinstance(second, qualification_pb2.LeadError)
    assert (second.code, second.field) == (3, "attributes.employees")
    assert isinstance(third, qualification_pb2.Decision)
    assert (third.lead_id, third.stage) == ("l3", qualification_pb2.STAGE_LEAD)


def test_qualify_batch_names_the_bad_lead(client: LeadgateClient) -> None:
    """A lead that cannot be converted is named by its position in the batch."""
    with pytest.raises(ValueError, match=r"^leads\[1\]: as_of: "):
        client.qualify_batch([lead("l1"), {"lead_id": "l2", "as_of": "soon"}])


def test_qualify_batch_of_nothing_is_empty(client: LeadgateClient) -> None:
    """An empty batch returns no results."""
    assert client.qualify_batch([]) == []


def test_list_rulesets_returns_the_listing(client: LeadgateClient) -> None:
    """list_rulesets returns the server's rulesets and default."""
    listing = client.list_rulesets()

    assert listing.default_ruleset == "b2b_default"
    assert [(r.name, r.active_version) for r in listing.rulesets] == [
        ("b2b_default", "v1")
    ]


def test_client_reports_an_unreachable_server() -> None:
    """A call to a server that is not there raises LeadgateError UNAVAILABLE."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    server.stop(grace=None).wait()

    with (
        LeadgateClient(f"127.0.0.1:{port}", timeout=5.0) as client,
        pytest.raises(LeadgateError) as raised,
    ):
        client.list_rulesets()

    assert raised.value.code == grpc.StatusCode.UNAVAILABLE


def test_decision_to_dict_keeps_proto_field_names() -> None:
    """decision_to_dict uses snake_case and enum names, and keeps zero values."""
    decision = qualification_pb2.Decision(
        lead_id="l1", stage=qualification_pb2.STAGE_MQL, total_score=12.5
    )
    decision.scores.add(category="fit", points=0.0, exact="0")

    data = decision_to_dict(decision)

    assert (data["lead_id"], data["stage"], data["total_score"]) == (
        "l1",
        "STAGE_MQL",
        12.5,
    )
    assert data["scores"] == [
        {"category": "fit", "points": 0.0, "exact": "0", "uncapped": ""}
    ]
    assert data["computed_stage"] == "STAGE_UNSPECIFIED"


def test_client_package_imports_nothing_from_leadgate() -> None:
    """The client imports and works with the server package made unimportable."""
    script = (
        "import sys\n"
        "sys.modules['leadgate'] = None\n"
        "import leadgate_client\n"
        "leadgate_client.to_request({'lead_id': 'l1', 'prior_stage': 'MQL'})\n"
        "print(sorted(name for name, module in sys.modules.items()\n"
        "      if module is not None and name.split('.')[0] in\n"
        "      {'leadgate', 'durable_rules', 'durable_rules_engine'}))\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "when", ["2026-11-30T10:00:00", "2026-11-30", "yesterday", "2026-11-30 10:00"]
)
def test_to_request_explains_what_a_time_must_look_like(when: str) -> None:
    """A time without a zone, or not a time at all, gets a message giving the form."""
    with pytest.raises(
        ValueError, match="needs an RFC 3339 time with a zone"
    ) as caught:
        to_request({"activities": [{"type": "chat", "occurred_at": when}]})
    assert str(caught.value).startswith("activities[0].occurred_at: ")
