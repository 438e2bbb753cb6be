"""Tests for replaying a recorded file through a real gRPC server with a fake."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from fakeserver import serving

from leadgate.replay import ReplayError, ReplayReport, RulesetSeen, StageCount, replay
from leadgate_client.v1 import qualification_pb2, qualification_pb2_grpc

STAGE_COLUMNS = ["stage", "leads", "share", "converted", "conversion", "lift"]


class FakeQualification(qualification_pb2_grpc.QualificationServiceServicer):
    """Decides by `want_stage`, refuses `bad` leads, and remembers what it was sent."""

    def __init__(self) -> None:
        self.batches: list[list[qualification_pb2.QualifyRequest]] = []

    def QualifyBatch(  # noqa: N802
        self, request: qualification_pb2.QualifyBatchRequest, context: Any
    ) -> qualification_pb2.QualifyBatchResponse:
        self.batches.append(list(request.requests))
        return qualification_pb2.QualifyBatchResponse(
            results=[self.result(lead) for lead in request.requests]
        )

    def result(
        self, request: qualification_pb2.QualifyRequest
    ) -> qualification_pb2.QualifyBatchResult:
        """Return a decision, or for a `bad` lead an error in its slot."""
        fields = request.attributes.fields
        if "bad" in fields:
            error = qualification_pb2.LeadError(
                code=3, message="unknown band", field="attributes.employees"
            )
            return qualification_pb2.QualifyBatchResult(error=error)
        decision = qualification_pb2.Decision(
            lead_id=request.lead_id,
            stage=qualification_pb2.Stage.Value(
                f"STAGE_{fields['want_stage'].string_value}"
            ),
            ruleset=request.ruleset or "b2b_default",
            version=request.version or "v1",
            content_hash="c0ffee" * 8,
        )
        return qualification_pb2.QualifyBatchResult(decision=decision)


@pytest.fixture
def servicer() -> FakeQualification:
    """Return the fake servicer the server runs."""
    return FakeQualification()


@pytest.fixture
def target(servicer: FakeQualification) -> Iterator[str]:
    """Serve the fake on a free local port and return its address."""
    with serving(servicer) as address:
        yield address


def line(lead_id: str, stage: str, converted: bool | None = None) -> str:
    """Return one recorded line for a lead that should land in stage."""
    record: dict[str, Any] = {
        "request": {
            "lead_id": lead_id,
            "attributes": {"want_stage": stage},
            "activities": [
                {"type": "demo_request", "occurred_at": "2026-12-01T10:00:00Z"}
            ],
            "prior_stage": "STAGE_LEAD",
        }
    }
    if converted is not None:
        record["outcome"] = {"converted": converted}
    return json.dumps(record)


@pytest.fixture
def recorded(tmp_path: pathlib.Path) -> pathlib.Path:
    """Write a small recorded file: ten leads, a blank line and three bad lines."""
    lines = [
        line("l1", "SQL", converted=True),
        line("l2", "SQL", converted=False),
        "",
        line("l4", "MQL", converted=True),
        line("l5", "MQL"),
        '{"request": {"lead_id": "l6"',
        line("l7", "LEAD", converted=False),
        line("l8", "LEAD", converted=False),
        json.dumps({"request": {"lead_id": "l9", "attributes": {"bad": True}}}),
        json.dumps({"request": {"lead_id": "l10", "as_of": "yesterday"}}),
        line("l11", "DISQUALIFIED", converted=False),
    ]
    path = tmp_path / "recorded.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_replay_counts_leads_decisions_and_errors(
    recorded: pathlib.Path, target: str
) -> None:
    """Every non-blank line counts once, as a decision or as an error."""
    report = replay(recorded, target, batch_size=3)

    assert (report.total, report.decided, report.error_count) == (10, 7, 3)
    assert (report.with_outcome, report.converted) == (6, 2)
    assert report.conversion == pytest.approx(1 / 3)
    assert report.rulesets == (RulesetSeen("b2b_default", "v1", "c0ffee" * 8, 7),)
    assert report.elapsed_seconds > 0
    assert report.decisions_per_second == pytest.approx(7 / report.elapsed_seconds)


def test_replay_reports_conversion_and_lift_per_stage(
    recorded: pathlib.Path, target: str
) -> None:
    """Stages come highest first with their share, conversion and lift."""
    report = replay(recorded, target, batch_size=3)

    assert report.stages == (
        StageCount("SQL", 2, pytest.approx(2 / 7), 2, 1, 0.5, pytest.approx(1.5)),
        StageCount("MQL", 2, pytest.approx(2 / 7), 1, 1, 1.0, pytest.approx(3.0)),
        StageCount("LEAD", 2, pytest.approx(2 / 7), 2, 0, 0.0, 0.0),
        StageCount("DISQUALIFIED", 1, pytest.approx(1 / 7), 1, 0, 0.0, 0.0),
    )


def test_replay_keeps_errors_with_their_line_numbers(
    recorded: pathlib.Path, target: str
) -> None:
    """Malformed, invalid and refused lines are errors with line, lead and code."""
    report = replay(recorded, target, batch_size=3)

    malformed, refused, invalid = report.errors
    assert malformed[:3] == (6, "", "INVALID_ARGUMENT")
    assert malformed.message.startswith("not valid JSON: ")
    assert refused == ReplayError(
        9, "l9", "INVALID_ARGUMENT", "attributes.employees: unknown band"
    )
    assert invalid[:3] == (10, "l10", "INVALID_ARGUMENT")
    assert invalid.message.startswith("not a valid request: as_of: ")


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        (
            {"converted": "yes"},
            "not a valid outcome: converted: expected true or false",
        ),
        (["converted"], "not a valid outcome: expected an object"),
    ],
)
def test_replay_counts_an_unreadable_outcome_as_an_error(
    tmp_path: pathlib.Path, target: str, outcome: object, message: str
) -> None:
    """A line whose outcome is not a converted flag is an error, not a decision."""
    record = {"request": {"lead_id": "l1"}, "outcome": outcome}
    path = tmp_path / "recorded.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")

    report = replay(path, target)

    assert (report.total, report.decided) == (1, 0)
    assert report.errors == (ReplayError(1, "l1", "INVALID_ARGUMENT", message),)


def test_replay_sends_valid_leads_in_batches(
    recorded: pathlib.Path, target: str, servicer: FakeQualification
) -> None:
    """Each batch holds the valid leads among batch_size non-blank lines."""
    replay(recorded, target, batch_size=3)

    sent = [[request.lead_id for request in batch] for batch in servicer.batches]
    assert sent == [["l1", "l2", "l4"], ["l5", "l7"], ["l8", "l9"], ["l11"]]


def test_replay_overrides_ruleset_and_version(
    recorded: pathlib.Path, target: str, servicer: FakeQualification
) -> None:
    """A ruleset and version given to replay replace those in every request."""
    report = replay(recorded, target, ruleset="enterprise", version="v9")

    pins = {(r.ruleset, r.version) for batch in servicer.batches for r in batch}
    assert pins == {("enterprise", "v9")}
    assert report.rulesets == (RulesetSeen("enterprise", "v9", "c0ffee" * 8, 7),)


def test_replay_blames_a_failed_call_on_each_of_its_leads(
    recorded: pathlib.Path,
) -> None:
    """When the server is unreachable every valid lead is an UNAVAILABLE error."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    server.stop(grace=None).wait()

    report = replay(recorded, f"127.0.0.1:{port}", timeout=5.0)

    assert (report.total, report.decided, report.error_count) == (10, 0, 10)
    codes = [error.code for error in report.errors]
    assert codes.count("UNAVAILABLE") == 8
    assert report.stages == ()
    assert report.conversion is None


def test_replay_report_text_is_an_aligned_table(
    recorded: pathlib.Path, target: str
) -> None:
    """to_text shows one aligned row per stage and a row for all decided leads."""
    text = replay(recorded, target).to_text()

    lines = text.splitlines()
    start = lines.index(next(row for row in lines if row.startswith("stage")))
    table = lines[start : start + 6]
    assert table[0].split() == STAGE_COLUMNS
    assert table[1].split() == ["SQL", "2", "28.6%", "1", "50.0%", "1.50x"]
    assert table[5].split() == ["all", "7", "100.0%", "2", "33.3%", "1.00x"]
    assert len({len(row) for row in table}) == 1
    assert "Errors (first 3 of 3):" in lines


def test_replay_report_to_dict_is_json_ready(
    recorded: pathlib.Path, target: str
) -> None:
    """to_dict round-trips through JSON with the counts and the error list."""
    report: ReplayReport = replay(recorded, target)

    data = json.loads(json.dumps(report.to_dict()))

    assert (data["total"], data["decided"], data["error_count"]) == (10, 7, 3)
    assert data["stages"][0]["stage"] == "SQL"
    assert data["errors"][1] == {
        "line": 9,
        "lead_id": "l9",
        "code": "INVALID_ARGUMENT",
        "message": "attributes.employees: unknown band",
    }
    assert data["rulesets"] == [
        {
            "name": "b2b_default",
            "version": "v1",
            "content_hash": "c0ffee" * 8,
            "decisions": 7,
        }
    ]


def test_replay_draws_progress_on_stderr(
    recorded: pathlib.Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """With progress on, a bar that reaches 100% is written to stderr only."""
    replay(recorded, target, batch_size=4, progress=True)

    captured = capsys.readouterr()
    assert captured.out == ""
    final = captured.err.rstrip("\n").split("\r")[-1]
    assert final.startswith("replay: 100%")
    assert "leads=10" in final


def test_replay_refuses_a_batch_size_below_one(
    recorded: pathlib.Path, target: str
) -> None:
    """A batch size of zero is rejected before anything is sent."""
    with pytest.raises(ValueError, match="batch_size"):
        replay(recorded, target, batch_size=0)
