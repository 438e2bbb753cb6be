"""A blocking client for Leadgate: plain lead dicts in, decisions out, one error."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from leadgate_client.v1 import (
    qualification_pb2,
    qualification_pb2_grpc,
    ruleset_pb2,
    ruleset_pb2_grpc,
)

Lead: TypeAlias = Mapping[str, Any] | qualification_pb2.QualifyRequest
BatchResult: TypeAlias = qualification_pb2.Decision | qualification_pb2.LeadError
_Filled: TypeAlias = qualification_pb2.QualifyRequest | qualification_pb2.Activity

FIELD_METADATA_KEY = "leadgate-field"

_Response = TypeVar("_Response")
_TIMESTAMP = "google.protobuf.Timestamp"
_STRUCT = "google.protobuf.Struct"
_JSON_VALUES = frozenset(
    {_STRUCT, "google.protobuf.Value", "google.protobuf.ListValue"}
)


class LeadgateError(Exception):
    """A call to Leadgate failed: its status code, the server's words, the bad field."""

    def __init__(
        self, code: grpc.StatusCode, details: str, field: str | None = None
    ) -> None:
        self.code = code
        self.details = details
        self.field = field
        where = f" (field {field})" if field else ""
        super().__init__(f"{code.name}: {details}{where}")

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> LeadgateError:
        """Read the code, details and `leadgate-field` trailer of a failed call."""
        if not isinstance(error, grpc.Call):
            return cls(grpc.StatusCode.UNKNOWN, str(error))
        code: grpc.StatusCode = error.code()
        details: str | None = error.details()
        return cls(code, details or "", _field_of(error.trailing_metadata()))


class LeadgateClient:
    """A channel to one Leadgate server; close it, or use it as a context manager."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float = 5.0,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self._timeout = timeout
        if credentials is None:
            self._channel = grpc.insecure_channel(target)
        else:
            self._channel = grpc.secure_channel(target, credentials)
        self._qualification = qualification_pb2_grpc.QualificationServiceStub(
            self._channel
        )
        self._rulesets = ruleset_pb2_grpc.RulesetServiceStub(self._channel)

    def __enter__(self) -> LeadgateClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def qualify(
        self, lead: Lead, *, timeout: float | None = None
    ) -> qualification_pb2.Decision:
        """Decide one lead; raise LeadgateError when the server refuses it."""
        request = to_request(lead)
        decision: qualification_pb2.Decision = self._call(
            self._qualification.Qualify, request, timeout
        )
        return decision

    def qualify_batch(
        self, leads: Sequence[Lead], *, timeout: float | None = None
    ) -> list[BatchResult]:
        """Decide many leads in one call: a Decision or LeadError per lead, in order."""
        if not leads:
            return []
        batch = qualification_pb2.QualifyBatchRequest(
            requests=[_batch_request(index, lead) for index, lead in enumerate(leads)]
        )

        response: qualification_pb2.QualifyBatchResponse = self._call(
            self._qualification.QualifyBatch, batch, timeout
        )
        if len(response.results) != len(leads):
            raise LeadgateError(
                grpc.StatusCode.INTERNAL,
                f"server returned {len(response.results)} results "
                f"for {len(leads)} leads",
            )

        return [_batch_result(result) for result in response.results]

    def list_rulesets(
        self, *, timeout: float | None = None
    ) -> ruleset_pb2.ListRulesetsResponse:
        """List the server's rulesets, their versions and the active one."""
        listing: ruleset_pb2.ListRulesetsResponse = self._call(
            self._rulesets.ListRulesets, ruleset_pb2.ListRulesetsRequest(), timeout
        )
        return listing

    def close(self) -> None:
        """Close the channel; calls made afterwards fail."""
        self._channel.close()

    def _call(
        self, method: Callable[..., _Response], request: Message, timeout: float | None
    ) -> _Response:
        """Make one call with a deadline, turning a gRPC failure into LeadgateError."""
        try:
            return method(
                request, timeout=self._timeout if timeout is None else timeout
            )
        except grpc.RpcError as error:
            raise LeadgateError.from_rpc_error(error) from error


def to_request(lead: Lead) -> qualification_pb2.QualifyRequest:
    """Build a QualifyRequest from a plain lead mapping; a request passes through."""
    if isinstance(lead, qualification_pb2.QualifyRequest):
        return lead
    if not isinstance(lead, Mapping):
        raise ValueError(f"lead: expected a mapping, got {type(lead).__name__}")
    request = qualification_pb2.QualifyRequest()
    _fill(request, lead, "")
    return request


def decision_to_dict(decision: qualification_pb2.Decision) -> dict[str, Any]:
    """Return a decision as JSON-ready data keyed by the proto field names."""
    return json_format.MessageToDict(
        decision,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def _batch_request(index: int, lead: Lead) -> qualification_pb2.QualifyRequest:
    """Convert one lead of a batch, naming its position when it is bad."""
    try:
        return to_request(lead)
    except ValueError as error:
        raise ValueError(f"leads[{index}]: {error}") from None


def _batch_result(result: qualification_pb2.QualifyBatchResult) -> BatchResult:
    """Unwrap the decision or the error that one batch slot holds."""
    if result.HasField("decision"):
        return result.decision
    if result.HasField("error"):
        return result.error
    return qualification_pb2.LeadError(
        code=grpc.StatusCode.UNKNOWN.value[0], message="server sent an empty result"
    )


def _field_of(metadata: Any) -> str | None:
    """Return the `leadgate-field` trailer, if the server sent one."""
    for key, value in metadata or ():
        if key == FIELD_METADATA_KEY:
            return value if isinstance(value, str) else bytes(value).decode()
    return None


def _fill(message: _Filled, data: Mapping[str, Any], path: str) -> None:
    """Set each entry of data on message, naming the field path of a bad one."""
    fields = message.DESCRIPTOR.fields_by_name
    for name, value in data.items():
        field_path = f"{path}.{name}" if path else str(name)
        field = fields.get(name) if isinstance(name, str) else None
        if field is None:
            raise ValueError(
                f"{field_path}: no such field in {message.DESCRIPTOR.name}"
            )
        if _is_message_list(field):
            _fill_list(getattr(message, name), value, field_path)
        else:
            _parse_field(
                message, name, _json_value(field, value, field_path), field_path
            )


def _fill_list(container: Any, items: Any, path: str) -> None:
    """Append one message per mapping in items to a repeated message field."""
    if not _is_list(items):
        raise ValueError(f"{path}: expected a list, got {type(items).__name__}")
    for index, item in enumerate(items):
        item_path = f"{path}[{index}]"
        if not isinstance(item, Mapping):
            raise ValueError(
                f"{item_path}: expected a mapping, got {type(item).__name__}"
            )
        _fill(container.add(), item, item_path)


def _parse_field(message: _Filled, name: str, value: Any, path: str) -> None:
    """Set one field from its JSON form, reporting a parse failure by path."""
    try:
        json_format.ParseDict({name: value}, message)
    except json_format.ParseError as error:
        raise ValueError(f"{path}: {_reason(error)}") from None


def _json_value(field: FieldDescriptor, value: Any, path: str) -> Any:
    """Turn a Python value into the JSON form protobuf expects for field."""
    kind = field.message_type.full_name if field.message_type else ""
    if kind == _TIMESTAMP and isinstance(value, datetime.datetime):
        return _rfc3339(value, path)
    if kind == _TIMESTAMP and isinstance(value, str):
        return _checked_time(value, path)
    if kind == _STRUCT and not isinstance(value, Mapping):
        raise ValueError(f"{path}: expected a mapping, got {type(value).__name__}")
    if kind in _JSON_VALUES:
        return _plain(value, path)
    if field.enum_type is not None and isinstance(value, str):
        return _enum_name(field.enum_type, value)
    if field.enum_type is not None and isinstance(value, bool | float):
        raise ValueError(f"{path}: expected a name or a number, got {value!r}")
    return value


def _plain(value: Any, path: str) -> Any:
    """Return value as JSON data, datetimes as RFC 3339 text, or name the bad path."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime.datetime):
        return _rfc3339(value, path)
    if isinstance(value, Mapping):
        return {
            _key(key, path): _plain(item, f"{path}.{key}")
            for key, item in value.items()
        }
    if _is_list(value):
        return [_plain(item, f"{path}[{index}]") for index, item in enumerate(value)]
    raise ValueError(f"{path}: cannot send a value of type {type(value).__name__}")


def _key(key: object, path: str) -> str:
    """Return a mapping key that a protobuf Struct can hold."""
    if not isinstance(key, str):
        raise ValueError(f"{path}: keys must be strings, got {type(key).__name__}")
    return key


def _rfc3339(value: datetime.datetime, path: str) -> str:
    """Format an aware datetime as RFC 3339 in UTC."""
    if value.utcoffset() is None:
        raise ValueError(f"{path}: datetime has no time zone")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp.ToJsonString()


def _checked_time(text: str, path: str) -> str:
    """Pass RFC 3339 text through, or say plainly what a time must look like."""
    try:
        parsed = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() is None or "T" not in text.upper():
        raise ValueError(
            f"{path}: needs an RFC 3339 time with a zone, such as 2026-12-01T10:00:00Z"
        )
    return _rfc3339(parsed, path)


def _enum_name(enum: EnumDescriptor, value: str) -> str:
    """Expand a short stage or level name such as "mql" to its enum name."""
    names = [member.name for member in enum.values]
    common = names[0]
    for name in names[1:]:
        while not name.startswith(common):
            common = common[:-1]
    prefix = common[: common.rfind("_") + 1]
    name = value.strip().upper()
    return name if name.startswith(prefix) else prefix + name


def _reason(error: json_format.ParseError) -> str:
    """Keep the part of a protobuf parse message that says what is wrong."""
    text = str(error).split("\n", 1)[0]
    text = re.sub(r"^(?:Failed to parse \w+ field: )+", "", text)
    text = re.sub(r" at \S+$", "", text)
    return text.rstrip(".")


def _is_message_list(field: FieldDescriptor) -> bool:
    """Say whether field is a repeated message other than a map or a JSON value."""
    message_type = field.message_type
    return (
        field.is_repeated
        and message_type is not None
        and not message_type.GetOptions().map_entry
        and message_type.full_name not in _JSON_VALUES
    )


def _is_list(value: object) -> bool:
    """Say whether value is a sequence other than text."""
    return isinstance(value, Sequence) and not isinstance(
        value, str | bytes | bytearray
    )
