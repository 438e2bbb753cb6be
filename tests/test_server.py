"""Tests for a real server on port 0, called over the wire, and for `leadgate serve`."""

from __future__ import annotations

import json
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any, NoReturn, cast

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from leadgate.app import Config, Running, create_server
from leadgate.errors import OperatorError
from leadgate_client import LeadgateClient, LeadgateError, to_request
from leadgate_client.v1 import qualification_pb2 as pb
from leadgate_client.v1 import qualification_pb2_grpc as pb_grpc

REPO = pathlib.Path(__file__).resolve().parent.parent
LEAD: dict[str, Any] = json.loads(
    (REPO / "tests" / "data" / "srv_lead.json").read_text(encoding="utf-8")
)
LEADGATE = pathlib.Path(sys.executable).with_name("leadgate")
STARTUP_SECONDS = 30.0
STOP_SECONDS = 15.0
MakeRulesDir = Callable[[str, str], pathlib.Path]


def lead(
    lead_id: str, *activities: tuple[str, int], **attributes: Any
) -> dict[str, Any]:
    """A plain lead decided at the shared as_of, with (type, day of November) events."""
    return {
        "lead_id": lead_id,
        "attributes": attributes,
        "activities": [
            {"type": kind, "occurred_at": f"2026-11-{day:02d}T12:00:00Z"}
            for kind, day in activities
        ],
        "as_of": LEAD["as_of"],
    }


# Leads that end in every stage, some by several paths: SQL by BANT, MQL, DISQUALIFIED
# for a personal mailbox, a competitor and a student, LEAD twice, SQL by committee.
MIXED = [
    LEAD,
    lead(
        "mql",
        ("webinar_attended", 21),
        title="Data Engineer",
        employees=500,
        industry="software",
        country="US",
    ),
    lead("personal", email="kim@gmail.com", title="Marketing Manager", country="US"),
    lead("competitor", email="sam@leadlytics.io", title="Head of Growth"),
    lead("student", email="lee@state-university.edu", student="yes"),
    lead(
        "abroad",
        email="rui@loja.com.br",
        title="CTO",
        employees=80,
        industry="SaaS",
        country="Brazil",
    ),
    lead("bare"),
    lead(
        "committee",
        ("demo_request", 28),
        email="li@globex.com",
        title="Analyst",
        colleagues_engaged=3,
    ),
]


@pytest.fixture
def channel(running: Running) -> Iterator[grpc.Channel]:
    """A raw channel to the running server, for the generated stubs."""
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as opened:
        yield opened


def comparable(decision: pb.Decision) -> pb.Decision:
    """A copy of a decision without the parts that differ on every call."""
    copy = pb.Decision()
    copy.CopyFrom(decision)
    copy.ClearField("decision_id")
    copy.ClearField("lead_id")
    return copy


def test_qualify_over_the_wire_through_the_generated_stub(
    channel: grpc.Channel,
) -> None:
    """The generated stub gets the decision the shipped lead deserves."""
    stub = pb_grpc.QualificationServiceStub(channel)

    decision = stub.Qualify(to_request(LEAD), timeout=10)

    assert (decision.lead_id, decision.stage, decision.owner) == (
        "srv-sql-1",
        pb.STAGE_SQL,
        "sales",
    )
    assert decision.total_score_exact == "95"
    assert len(decision.fired_rules) == 17


def test_qualify_batch_over_the_wire_keeps_order(client: LeadgateClient) -> None:
    """A batch through the client returns decisions and errors in request order."""
    bad = lead("bad", employees="lots")

    results = client.qualify_batch([LEAD, bad, MIXED[2]])

    first, second, third = results
    assert isinstance(first, pb.Decision)
    assert (first.lead_id, first.stage) == ("srv-sql-1", pb.STAGE_SQL)
    assert isinstance(second, pb.LeadError)
    assert (second.code, second.field) == (
        grpc.StatusCode.INVALID_ARGUMENT.value[0],
        "attributes.employees",
    )
    assert isinstance(third, pb.Decision)
    assert (third.lead_id, third.stage) == ("personal", pb.STAGE_DISQUALIFIED)


BROKEN: list[tuple[Any, grpc.StatusCode, str | None]] = [
    (
        lead("l", employees="lots"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "attributes.employees",
    ),
    (lead("l", email=5), grpc.StatusCode.INVALID_ARGUMENT, "attributes.email"),
    (
        {**lead("l"), "activities": [{"type": "chat"}]},
        grpc.StatusCode.INVALID_ARGUMENT,
        "activities[0].occurred_at",
    ),
    (
        pb.QualifyRequest(prior_stage=cast(pb.Stage.ValueType, 9)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "prior_stage",
    ),
    ({**lead("l"), "ruleset": "nope"}, grpc.StatusCode.NOT_FOUND, None),
    ({**lead("l"), "version": "1.0"}, grpc.StatusCode.NOT_FOUND, None),
]


@pytest.mark.parametrize(
    ("bad", "code", "field"),
    BROKEN,
    ids=["employees", "email", "occurred_at", "prior_stage", "ruleset", "version"],
)
def test_qualify_over_the_wire_raises_leadgate_error(
    client: LeadgateClient, bad: Any, code: grpc.StatusCode, field: str | None
) -> None:
    """A refused lead reaches the client as LeadgateError with code and field."""
    with pytest.raises(LeadgateError) as raised:
        client.qualify(bad)

    assert raised.value.code == code
    assert raised.value.field == field
    if field:
        assert raised.value.details.startswith(f"{field}: ")


def test_qualify_over_the_wire_sends_a_bad_request_detail(
    channel: grpc.Channel,
) -> None:
    """The rich status of a refused lead carries a BadRequest naming the field."""
    stub = pb_grpc.QualificationServiceStub(channel)

    with pytest.raises(grpc.RpcError) as raised:
        stub.Qualify(to_request(lead("l", employees="lots")), timeout=10)

    status = rpc_status.from_call(raised.value)
    assert status is not None
    request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(request)
    assert [v.field for v in request.field_violations] == ["attributes.employees"]


def test_qualify_batch_over_the_limit_is_resource_exhausted(
    client: LeadgateClient,
) -> None:
    """More than 1000 leads in one batch fail the call as RESOURCE_EXHAUSTED."""
    with pytest.raises(LeadgateError) as raised:
        client.qualify_batch([{}] * 1001)

    assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert raised.value.details == "a batch holds at most 1000 leads, got 1001"


def test_qualify_over_the_wire_hides_unexpected_errors(
    client: LeadgateClient, running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unplanned exception arrives as INTERNAL "internal error", not UNKNOWN."""

    def broken(name: str = "", version: str = "") -> NoReturn:
        raise RuntimeError("resolver broke at /srv/leadgate/secret.py")

    monkeypatch.setattr(running.store, "_resolve", broken)

    with pytest.raises(LeadgateError) as raised:
        client.qualify(LEAD)

    assert raised.value.code == grpc.StatusCode.INTERNAL
    assert raised.value.details == "internal error"


def test_server_answers_correctly_after_broken_requests(
    client: LeadgateClient,
) -> None:
    """A run of refused requests leaves the server deciding the next lead right."""
    before = client.qualify(LEAD)

    for bad, code, _ in BROKEN * 3:
        with pytest.raises(LeadgateError) as raised:
            client.qualify(bad)
        assert raised.value.code == code
    after = client.qualify(LEAD)

    assert comparable(after) == comparable(before)
    assert (after.stage, after.total_score_exact) == (pb.STAGE_SQL, "95")


def test_server_keeps_concurrent_calls_isolated(client: LeadgateClient) -> None:
    """8 threads of 50 calls each get exactly the decisions sequential calls get."""
    expected = [comparable(client.qualify(item)) for item in MIXED]

    def calls(thread: int) -> list[tuple[int, str, pb.Decision]]:
        picks = [(thread * 3 + call) % len(MIXED) for call in range(50)]
        return [
            (
                pick,
                f"t{thread}-{call}",
                client.qualify({**MIXED[pick], "lead_id": f"t{thread}-{call}"}),
            )
            for call, pick in enumerate(picks)
        ]

    with futures.ThreadPoolExecutor(max_workers=8) as pool:
        done = [call for result in pool.map(calls, range(8)) for call in result]

    assert {d.stage for d in expected} == {
        pb.STAGE_SQL,
        pb.STAGE_MQL,
        pb.STAGE_LEAD,
        pb.STAGE_DISQUALIFIED,
    }
    assert len(done) == 400
    assert len({decision.decision_id for _, _, decision in done}) == 400
    for pick, lead_id, decision in done:
        assert decision.lead_id == lead_id
        assert comparable(decision) == expected[pick], lead_id


@pytest.mark.parametrize(
    "service",
    ["", "leadgate.v1.QualificationService", "leadgate.v1.RulesetService"],
)
def test_health_reports_serving(channel: grpc.Channel, service: str) -> None:
    """The standard health check says SERVING for the server and its services."""
    stub = health_pb2_grpc.HealthStub(channel)

    response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)

    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(channel: grpc.Channel) -> None:
    """Server reflection lists Leadgate's services and the health service."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    asked = reflection_pb2.ServerReflectionRequest(list_services="")

    (response,) = list(stub.ServerReflectionInfo(iter([asked]), timeout=10))

    names = {s.name for s in response.list_services_response.service}
    assert {
        "leadgate.v1.QualificationService",
        "leadgate.v1.RulesetService",
        "grpc.health.v1.Health",
    } <= names


class ServeProcess:
    """`leadgate serve` in a child process, with its JSON log lines as events."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.seen: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put(b"")

    def wait_for(self, event: str, timeout: float) -> dict[str, Any]:
        """The first logged event of that name; fail at the deadline or at exit."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                pytest.fail(f"no {event} within {timeout}s: {self.seen}")
            if not line:
                pytest.fail(f"exited before {event}: {self.seen}")
            self.seen.append(line)
            if line.startswith(b"{") and json.loads(line).get("event") == event:
                return dict(json.loads(line))

    def finish(self) -> list[dict[str, Any]]:
        """Wait for the log to end and return the events logged after the last wait."""
        self.reader.join(timeout=STOP_SECONDS)
        events = []
        while not self.lines.empty():
            line = self.lines.get()
            if line.startswith(b"{"):
                events.append(json.loads(line))
        return events


@contextmanager
def serving(args: list[str]) -> Iterator[ServeProcess]:
    """Run the child for the block; kill it if the block leaves it running."""
    child = ServeProcess(args)
    try:
        yield child
    finally:
        if child.process.poll() is None:
            child.process.kill()
            child.process.wait()
        child.reader.join(timeout=STOP_SECONDS)
        assert child.process.stderr is not None
        child.process.stderr.close()


def serve_args(rules: pathlib.Path) -> list[str]:
    """The command line that serves a rules directory on a free port with JSON logs."""
    return [
        str(LEADGATE),
        "serve",
        "--address",
        "127.0.0.1:0",
        "--rules",
        str(rules),
        "--log-format",
        "json",
    ]


def test_serve_answers_and_stops_cleanly_on_sigterm() -> None:
    """`leadgate serve` logs its port, decides a lead and exits 0 on SIGTERM."""
    with serving(serve_args(REPO / "rules")) as child:
        started = child.wait_for("server.started", STARTUP_SECONDS)
        with LeadgateClient(f"127.0.0.1:{started['port']}", timeout=10.0) as client:
            decision = client.qualify(LEAD)

        child.process.send_signal(signal.SIGTERM)
        code = child.process.wait(timeout=STOP_SECONDS)
        events = [e["event"] for e in child.finish()]

    assert (decision.stage, decision.total_score_exact) == (pb.STAGE_SQL, "95")
    assert started["port"] > 0
    assert code == 0
    assert events[-2:] == ["server.stopping", "server.stopped"]
    assert "decision" in events


# Announces readiness through the server's own logger, then at once sends SIGTERM, as an
# orchestrator may as soon as it sees the server start.
SIGTERM_WHEN_STARTED = """
import os, signal, sys
import leadgate.app
from leadgate.cli import main


class SignalOnStart:
    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):
        return getattr(self.log, name)

    def info(self, event, **values):
        self.log.info(event, **values)
        if event == "server.started":
            os.kill(os.getpid(), signal.SIGTERM)


leadgate.app.log = SignalOnStart(leadgate.app.log)
sys.exit(main(sys.argv[1:]))
"""


def test_serve_handles_sigterm_as_soon_as_it_announces_start() -> None:
    """A SIGTERM sent right when server.started is logged still stops it cleanly."""
    args = [sys.executable, "-c", SIGTERM_WHEN_STARTED, *serve_args(REPO / "rules")[1:]]

    with serving(args) as child:
        child.wait_for("server.started", STARTUP_SECONDS)
        code = child.process.wait(timeout=STOP_SECONDS)
        events = [e["event"] for e in child.finish()]

    assert code == 0
    assert events[-1:] == ["server.stopped"]


def test_serve_refuses_to_start_with_a_broken_default_ruleset(
    make_rules_dir: MakeRulesDir,
) -> None:
    """A default ruleset that does not compile makes `serve` exit 1 naming the file."""
    shipped = (REPO / "rules" / "b2b_default.yaml").read_text(encoding="utf-8")
    broken = shipped.replace("'employees >= 200'", "'employes >= 200'", 1)
    line = shipped.splitlines().index("    when: 'employees >= 200'") + 1
    rules = make_rules_dir("b2b_default.yaml", broken)

    done = subprocess.run(
        serve_args(rules), capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 1
    path = rules / "b2b_default.yaml"
    assert f"{path}:{line}: rule 'size-large': unknown fact 'employes'" in done.stderr
    last = done.stderr.rstrip().splitlines()[-1]
    assert last == (
        "leadgate: no valid version of 'b2b_default' is loaded; its file was refused: "
        f"{path}:{line}: rule 'size-large': unknown fact 'employes' "
        "(did you mean 'employees'?)"
    )


def test_serve_refuses_a_missing_rules_directory(tmp_path: pathlib.Path) -> None:
    """A rules directory that does not exist makes `serve` exit 1 saying so."""
    missing = tmp_path / "no-rules"

    done = subprocess.run(
        serve_args(missing), capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 1
    assert done.stderr.strip() == f"leadgate: rules directory {missing} does not exist"


@pytest.mark.parametrize("address", ["taken", "127.0.0.1:99999"])
def test_server_refuses_a_port_it_cannot_own(running: Running, address: str) -> None:
    """A port in use or out of range is an operator error, not a silent share."""
    target = f"127.0.0.1:{running.port}" if address == "taken" else address
    with pytest.raises(OperatorError, match=r"cannot listen|port must be"):
        create_server(Config(address=target), running.store)
