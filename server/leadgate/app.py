"""The server: configuration, gRPC server creation, health, reflection and shutdown."""

from __future__ import annotations

import pathlib
import signal
import threading
from concurrent import futures
from dataclasses import dataclass
from types import FrameType

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from leadgate import __version__
from leadgate.errors import NoActiveRulesetError, OperatorError, did_you_mean
from leadgate.servicer import QualificationServicer, RulesetServicer
from leadgate.store import LoadReport, RulesStore
from leadgate.watch import RulesWatcher
from leadgate_client.v1 import qualification_pb2, ruleset_pb2
from leadgate_client.v1 import qualification_pb2_grpc as pb_grpc
from leadgate_client.v1 import ruleset_pb2_grpc as rpb_grpc

log = structlog.get_logger("leadgate.app")
SERVICES = (
    qualification_pb2.DESCRIPTOR.services_by_name["QualificationService"].full_name,
    ruleset_pb2.DESCRIPTOR.services_by_name["RulesetService"].full_name,
)


@dataclass(frozen=True)
class Config:
    """How the server runs; every field has a default that works on a laptop."""

    address: str = "localhost:50051"
    rules: pathlib.Path = pathlib.Path("rules")
    default_ruleset: str = "b2b_default"
    workers: int = 4
    grace: float = 10.0
    max_message_bytes: int = 16 * 1024 * 1024
    watch: bool = True
    poll: bool = False


@dataclass
class Running:
    """A started server with what it needs to stop cleanly."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    store: RulesStore

    def stop(self, grace: float) -> None:
        """Turn health to NOT_SERVING, let in-flight calls finish, then stop."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.store.close()
        log.info("server.stopped")


def create_server(config: Config, store: RulesStore) -> Running:
    """Build and start a server for the store; returns it with the port it bound."""
    _check_port(config.address)
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # Without this a second server on a busy port starts and steals connections.
        ("grpc.so_reuseport", 0),
    ]
    # TODO: health checks share these request threads with decisions, so under several
    # large batches a probe can wait seconds; a separate health port would fix that.
    # TODO: a Struct nested past protobuf's depth limit fails in gRPC's own
    # deserialiser as INTERNAL before a servicer sees it; a custom deserialiser
    # could turn that into INVALID_ARGUMENT.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.workers), options=options
    )
    pb_grpc.add_QualificationServiceServicer_to_server(
        QualificationServicer(store), server
    )
    rpb_grpc.add_RulesetServiceServicer_to_server(RulesetServicer(store), server)
    checker = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    names = (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    try:
        port = server.add_insecure_port(config.address)
    except RuntimeError:
        port = 0
    if port == 0:
        server.stop(None)
        raise OperatorError(f"cannot listen on {config.address}")
    server.start()
    for name in ("", *SERVICES):
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    return Running(server, port, checker, store)


def _check_port(address: str) -> None:
    """Refuse a port out of range, which gRPC would otherwise wrap round silently."""
    port = address.rpartition(":")[2]
    if not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise OperatorError(f"{address}: the port must be a number from 0 to 65535")


def open_store(config: Config) -> RulesStore:
    """Load the rules directory; fail when the default ruleset has no valid version."""
    if not config.rules.exists():
        raise OperatorError(f"rules directory {config.rules} does not exist")
    store = RulesStore(config.rules, default_ruleset=config.default_ruleset)
    report = store.load()
    log.info(
        "rules.loaded",
        activated=list(report.activated),
        rejected=len(report.errors),
    )
    try:
        store.resolve()
    except NoActiveRulesetError as error:
        store.close()
        raise OperatorError(_why_default_is_missing(error, store, report)) from None
    return store


def _why_default_is_missing(
    error: NoActiveRulesetError, store: RulesStore, report: LoadReport
) -> str:
    message = str(error)
    if "refused" not in message and report.errors:
        message += "; refused files: " + "; ".join(e.describe() for e in report.errors)
    hint = did_you_mean(store.default_ruleset, [*report.loaded_names])
    return f"{message} ({hint})" if hint else message


def serve(config: Config) -> None:
    """Run the server until SIGTERM or Ctrl-C, then shut down gracefully."""
    stopping = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        log.info("server.stopping", signal=signal.Signals(number).name)
        stopping.set()

    # Handlers go in before anything is announced, so a signal sent the moment the
    # server says it started still stops it gracefully.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    store = open_store(config)
    watcher = RulesWatcher(store, poll=config.poll) if config.watch else None
    if watcher is not None:
        watcher.start()
        store.load()  # catch what changed between the first load and the watch
    running = create_server(config, store)
    log.info(
        "server.started", address=config.address, port=running.port, version=__version__
    )
    stopping.wait()
    if watcher is not None:
        watcher.stop()
    running.stop(config.grace)
