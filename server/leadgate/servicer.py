"""The gRPC servicers: translate messages, call the domain, map errors to statuses."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import structlog
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from leadgate import __version__
from leadgate.convert import decision_to_proto, lead_from_proto, rulesets_to_proto
from leadgate.engine import ENGINE_VERSION
from leadgate.errors import (
    EvaluationError,
    LeadInputError,
    NoActiveRulesetError,
    NotFoundError,
    RuleDefectError,
)
from leadgate.store import RulesStore
from leadgate.version import LoadedVersion
from leadgate_client.v1 import qualification_pb2 as pb
from leadgate_client.v1 import qualification_pb2_grpc as pb_grpc
from leadgate_client.v1 import ruleset_pb2 as rpb
from leadgate_client.v1 import ruleset_pb2_grpc as rpb_grpc

log = structlog.get_logger("leadgate.service")
MAX_BATCH = 1000
FIELD_KEY = "leadgate-field"
Clock = Callable[[], datetime]
Resolve = Callable[[str, str], LoadedVersion]


class CallFailedError(Exception):
    """A call that ends with a status code other than OK."""

    def __init__(self, code: grpc.StatusCode, message: str, field: str = "") -> None:
        self.code = code
        self.message = message
        self.field = field
        super().__init__(message)


def classify(error: Exception) -> CallFailedError:
    """The status code and message a caller gets for an error; never UNKNOWN."""
    if isinstance(error, CallFailedError):
        return error
    if isinstance(error, LeadInputError):
        return CallFailedError(
            grpc.StatusCode.INVALID_ARGUMENT, str(error), error.field
        )
    if isinstance(error, NotFoundError):
        return CallFailedError(grpc.StatusCode.NOT_FOUND, str(error))
    if isinstance(error, NoActiveRulesetError):
        return CallFailedError(grpc.StatusCode.FAILED_PRECONDITION, str(error))
    if isinstance(error, RuleDefectError):
        return CallFailedError(grpc.StatusCode.FAILED_PRECONDITION, str(error))
    if isinstance(error, EvaluationError):
        return CallFailedError(
            grpc.StatusCode.INTERNAL, "the rules engine failed on this lead"
        )
    return CallFailedError(grpc.StatusCode.INTERNAL, "internal error")


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def _abort(context: grpc.ServicerContext, failure: CallFailedError) -> None:
    """End the call with the failure's status, the field in metadata and details."""
    details = []
    if failure.field:
        request = error_details_pb2.BadRequest()
        request.field_violations.add(field=failure.field, description=failure.message)
        packed = any_pb2.Any()
        packed.Pack(request)
        details.append(packed)
    rich = rpc_status.to_status(
        status_pb2.Status(
            code=failure.code.value[0], message=failure.message, details=details
        )
    )
    metadata = tuple(rich.trailing_metadata)
    if failure.field:
        metadata += ((FIELD_KEY, failure.field),)
    context.abort_with_status(_Status(failure.code, failure.message, metadata))


def _log_refusal(
    request: pb.QualifyRequest, failure: CallFailedError, error: Exception
) -> None:
    """One event per refused lead, with ids and the field, never the values.

    A failure nobody planned for is an error with its traceback, for whoever must
    fix it; the caller never sees that.
    """
    lead_id = request.lead_id[:64]
    if failure.code is grpc.StatusCode.INTERNAL:
        log.error("call.failed", lead_id=lead_id, exc_info=error)
        return
    log.info(
        "decision.refused", lead_id=lead_id, code=failure.code.name, field=failure.field
    )


class QualificationServicer(pb_grpc.QualificationServiceServicer):
    """Qualify and QualifyBatch: proto to domain, decide, domain to proto."""

    def __init__(self, store: RulesStore, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))

    def Qualify(  # noqa: N802 - the name is the RPC's
        self, request: pb.QualifyRequest, context: grpc.ServicerContext
    ) -> pb.Decision:
        try:
            with self.store.holding() as resolve:
                return self._decide(request, context, resolve)
        except Exception as error:
            failure = classify(error)
            _log_refusal(request, failure, error)
            _abort(context, failure)
            raise  # abort raises; this line is never reached

    def QualifyBatch(  # noqa: N802
        self, request: pb.QualifyBatchRequest, context: grpc.ServicerContext
    ) -> pb.QualifyBatchResponse:
        if len(request.requests) > MAX_BATCH:
            failure = CallFailedError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"a batch holds at most {MAX_BATCH} leads, got {len(request.requests)}",
            )
            _abort(context, failure)
        response = pb.QualifyBatchResponse()
        with self.store.holding() as resolve:
            for item in request.requests:
                if not context.is_active():  # the caller cancelled or went away
                    cancelled = CallFailedError(
                        grpc.StatusCode.CANCELLED, "the call was cancelled"
                    )
                    _abort(context, cancelled)
                self._decide_slot(item, context, resolve, response.results.add())
        return response

    def _decide_slot(
        self,
        item: pb.QualifyRequest,
        context: grpc.ServicerContext,
        resolve: Resolve,
        result: pb.QualifyBatchResult,
    ) -> None:
        """Decide one lead of a batch into its slot; its error stays in that slot."""
        try:
            self._decide(item, context, resolve, into=result.decision)
        except Exception as error:  # noqa: BLE001 - one lead's error stays in its slot
            failure = classify(error)
            _log_refusal(item, failure, error)
            if failure.code is grpc.StatusCode.DEADLINE_EXCEEDED:
                _abort(context, failure)
            result.error.code = failure.code.value[0]
            result.error.message = failure.message
            result.error.field = failure.field

    def _decide(
        self,
        request: pb.QualifyRequest,
        context: grpc.ServicerContext,
        resolve: Resolve,
        into: pb.Decision | None = None,
    ) -> pb.Decision:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise CallFailedError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before deciding"
            )
        started = time.perf_counter()
        lead = lead_from_proto(request, self.clock())
        decision = resolve(request.ruleset, request.version).decide(lead)
        full = request.explain != pb.EXPLAIN_LEVEL_SUMMARY
        message = decision_to_proto(
            decision, full=full, service=__version__, engine=ENGINE_VERSION, into=into
        )
        # TODO: lead_id is logged as sent; a caller that puts an e-mail address there
        # puts personal data in the log. Hashing it would cost operators the lookup.
        log.info(
            "decision",
            lead_id=decision.lead_id[:64],
            decision_id=decision.decision_id,
            ruleset=decision.ruleset,
            version=decision.version,
            stage=decision.stage.name,
            fired=len(decision.fired),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return message


class RulesetServicer(rpb_grpc.RulesetServiceServicer):
    """The admin view of loaded rulesets."""

    def __init__(self, store: RulesStore) -> None:
        self.store = store

    def ListRulesets(  # noqa: N802
        self, request: rpb.ListRulesetsRequest, context: grpc.ServicerContext
    ) -> rpb.ListRulesetsResponse:
        return rulesets_to_proto(
            self.store.rulesets(), self.store.errors, self.store.default_ruleset
        )
