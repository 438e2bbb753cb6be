"""Replay: send a recorded file of leads through a running server and report stages."""

from __future__ import annotations

import collections
import dataclasses
import json
import pathlib
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import grpc
from tqdm import tqdm

from leadgate_client import LeadgateClient, LeadgateError, to_request
from leadgate_client.v1 import qualification_pb2

ERRORS_KEPT = 20

_INVALID = grpc.StatusCode.INVALID_ARGUMENT.name
_STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
_STAGE_NAMES = {
    int(number): name.removeprefix("STAGE_")
    for name, number in qualification_pb2.Stage.items()
}
_STAGE_HEADER = ("stage", "leads", "share", "converted", "conversion", "lift")
_ERROR_HEADER = ("line", "lead", "code", "message")


class ReplayError(NamedTuple):
    """A lead that got no decision: its line in the file, its id and why."""

    line: int
    lead_id: str
    code: str
    message: str


@dataclasses.dataclass(frozen=True)
class StageCount:
    """The leads decided into one stage and how many of those converted."""

    stage: str
    leads: int
    share: float
    with_outcome: int
    converted: int
    conversion: float | None
    lift: float | None


@dataclasses.dataclass(frozen=True)
class RulesetSeen:
    """A ruleset version that answered during the replay, with its decision count."""

    name: str
    version: str
    content_hash: str
    decisions: int


@dataclasses.dataclass(frozen=True)
class ReplayReport:
    """What a replay decided, how those leads converted, and how fast it went."""

    total: int
    decided: int
    error_count: int
    errors: tuple[ReplayError, ...]
    stages: tuple[StageCount, ...]
    with_outcome: int
    converted: int
    conversion: float | None
    elapsed_seconds: float
    decisions_per_second: float
    rulesets: tuple[RulesetSeen, ...]

    def to_text(self) -> str:
        """Render the report as a summary and an aligned stage table."""
        lines = [
            f"Replayed {self.total:,} leads in {self.elapsed_seconds:.2f} s "
            f"({self.decisions_per_second:,.0f} decisions/s): "
            f"{self.decided:,} decided, {self.error_count:,} errors"
        ]
        lines += [
            f"Ruleset {seen.name} {seen.version} "
            f"(content {seen.content_hash[:12]}): {seen.decisions:,} decisions"
            for seen in self.rulesets
        ]
        lines += ["", *_table([_STAGE_HEADER, *self._stage_rows()], "<>>>>>")]
        if self.with_outcome < self.decided:
            lines.append(
                f"Conversion counts the {self.with_outcome:,} decided leads "
                "with a recorded outcome."
            )
        if self.errors:
            lines += ["", f"Errors (first {len(self.errors)} of {self.error_count:,}):"]
            lines += _table([_ERROR_HEADER, *map(_error_row, self.errors)], "><<<")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            **dataclasses.asdict(self),
            "errors": [error._asdict() for error in self.errors],
            "stages": [dataclasses.asdict(stage) for stage in self.stages],
            "rulesets": [dataclasses.asdict(seen) for seen in self.rulesets],
        }

    def _stage_rows(self) -> list[tuple[str, ...]]:
        """Return one table row per stage, then the row for all decided leads."""
        everyone = StageCount(
            stage="all",
            leads=self.decided,
            share=1.0 if self.decided else 0.0,
            with_outcome=self.with_outcome,
            converted=self.converted,
            conversion=self.conversion,
            lift=1.0 if self.conversion else None,
        )
        return [_stage_row(stage) for stage in (*self.stages, everyone)]


class _Lead(NamedTuple):
    """A valid line of the file: its request and whether it converted, if known."""

    line: int
    request: qualification_pb2.QualifyRequest
    converted: bool | None


def replay(
    path: pathlib.Path,
    target: str,
    *,
    batch_size: int = 200,
    ruleset: str | None = None,
    version: str | None = None,
    timeout: float = 30.0,
    progress: bool = False,
) -> ReplayReport:
    """Send each lead in a recorded file to the server at target and tally them."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    tally = _Tally()
    started = time.perf_counter()
    meter = tqdm(
        total=path.stat().st_size,
        unit="B",
        unit_scale=True,
        desc="replay",
        disable=not progress,
        file=sys.stderr,
    )
    # One batch is in flight while the next is read and converted, so the reading
    # and the server's deciding overlap; the tally is only touched by the sender.
    sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-send")
    with meter, sender, LeadgateClient(target, timeout=timeout) as client:
        read, in_flight = 0, None
        for chunk, consumed in _chunks(path, batch_size):
            _override(chunk, ruleset, version)
            if in_flight is not None:
                in_flight.result()
            in_flight = sender.submit(_send, client, chunk, tally)
            meter.update(consumed - read)
            meter.set_postfix(leads=tally.error_count + tally.decided, refresh=False)
            read = consumed
        if in_flight is not None:
            in_flight.result()
        meter.set_postfix(leads=tally.error_count + tally.decided)

    return tally.report(time.perf_counter() - started)


def _chunks(
    path: pathlib.Path, size: int
) -> Iterator[tuple[list[_Lead | ReplayError], int]]:
    """Yield the file's non-blank lines parsed, size at a time, with bytes read."""
    chunk: list[_Lead | ReplayError] = []
    consumed = 0
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            consumed += len(raw)
            if raw.strip():
                chunk.append(_parse_line(number, raw))
            if len(chunk) == size:
                yield chunk, consumed
                chunk = []
    if chunk:
        yield chunk, consumed


def _parse_line(number: int, raw: bytes) -> _Lead | ReplayError:
    """Read one recorded line, or say why it cannot be replayed."""
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError) as error:
        return ReplayError(number, "", _INVALID, f"not valid JSON: {error}")
    if not isinstance(record, dict) or not isinstance(record.get("request"), dict):
        return ReplayError(number, "", _INVALID, 'no "request" object on the line')

    lead_id = record["request"].get("lead_id")
    lead_id = lead_id if isinstance(lead_id, str) else ""
    try:
        request = to_request(record["request"])
    except (ValueError, RecursionError) as error:
        return ReplayError(number, lead_id, _INVALID, f"not a valid request: {error}")
    try:
        converted = _converted(record.get("outcome"))
    except ValueError as error:
        return ReplayError(number, lead_id, _INVALID, f"not a valid outcome: {error}")
    return _Lead(number, request, converted)


def _converted(outcome: object) -> bool | None:
    """Return whether a recorded outcome says the lead converted, None if unknown."""
    if outcome is None:
        return None
    if not isinstance(outcome, dict):
        raise ValueError("expected an object")
    converted = outcome.get("converted")
    if converted is not None and not isinstance(converted, bool):
        raise ValueError("converted: expected true or false")
    return converted


def _override(
    chunk: list[_Lead | ReplayError], ruleset: str | None, version: str | None
) -> None:
    """Pin every request of the chunk to the ruleset and version asked for.

    The report needs stages and ids only, so decisions come back without the
    explanation, which is a third of what the server does per lead.
    """
    for item in chunk:
        if isinstance(item, _Lead):
            item.request.explain = qualification_pb2.EXPLAIN_LEVEL_SUMMARY
        if isinstance(item, _Lead) and ruleset is not None:
            item.request.ruleset = ruleset
        if isinstance(item, _Lead) and version is not None:
            item.request.version = version


def _send(
    client: LeadgateClient, chunk: list[_Lead | ReplayError], tally: _Tally
) -> None:
    """Decide the chunk's leads in one batch and record every line in file order."""
    leads = [item for item in chunk if isinstance(item, _Lead)]
    results = iter(_decide(client, leads))
    for item in chunk:
        if isinstance(item, ReplayError):
            tally.record_error(item)
            continue
        result = next(results)
        if isinstance(result, ReplayError):
            tally.record_error(result)
        else:
            tally.record_decision(item, result)


def _decide(
    client: LeadgateClient, leads: list[_Lead]
) -> list[qualification_pb2.Decision | ReplayError]:
    """Return each lead's decision, or its error when the lead or the call failed."""
    if not leads:
        return []
    try:
        results = client.qualify_batch([lead.request for lead in leads])
    except LeadgateError as error:
        code, details = error.code.name, error.details
        return [
            ReplayError(lead.line, lead.request.lead_id, code, details)
            for lead in leads
        ]
    return [
        result
        if isinstance(result, qualification_pb2.Decision)
        else _lead_error(lead, result)
        for lead, result in zip(leads, results, strict=True)
    ]


def _lead_error(lead: _Lead, error: qualification_pb2.LeadError) -> ReplayError:
    """Describe the error the server gave one lead of a batch."""
    code = _STATUS_NAMES.get(error.code, f"CODE_{error.code}")
    message = f"{error.field}: {error.message}" if error.field else error.message
    return ReplayError(lead.line, lead.request.lead_id, code, message)


class _Tally:
    """Running counts of a replay, turned into a report at the end."""

    def __init__(self) -> None:
        self.decided = 0
        self.errors: list[ReplayError] = []
        self.error_count = 0
        self.leads: collections.Counter[int] = collections.Counter()
        self.outcomes: collections.Counter[int] = collections.Counter()
        self.converted: collections.Counter[int] = collections.Counter()
        self.rulesets: collections.Counter[tuple[str, str, str]] = collections.Counter()

    def record_error(self, error: ReplayError) -> None:
        """Count a lead that got no decision, keeping the first few."""
        self.error_count += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(error)

    def record_decision(
        self, lead: _Lead, decision: qualification_pb2.Decision
    ) -> None:
        """Count a decided lead under its stage, with its outcome if recorded."""
        self.decided += 1
        self.leads[decision.stage] += 1
        if lead.converted is not None:
            self.outcomes[decision.stage] += 1
            self.converted[decision.stage] += lead.converted
        key = (decision.ruleset, decision.version, decision.content_hash)
        self.rulesets[key] += 1

    def report(self, elapsed: float) -> ReplayReport:
        """Freeze the counts into a report."""
        with_outcome = sum(self.outcomes.values())
        converted = sum(self.converted.values())
        overall = _ratio(converted, with_outcome)

        stages = tuple(
            self._stage(stage, overall) for stage in sorted(self.leads, reverse=True)
        )
        rulesets = tuple(
            RulesetSeen(name, version, content_hash, count)
            for (name, version, content_hash), count in self.rulesets.items()
        )

        return ReplayReport(
            total=self.decided + self.error_count,
            decided=self.decided,
            error_count=self.error_count,
            errors=tuple(self.errors),
            stages=stages,
            with_outcome=with_outcome,
            converted=converted,
            conversion=overall,
            elapsed_seconds=elapsed,
            decisions_per_second=self.decided / elapsed if elapsed > 0 else 0.0,
            rulesets=rulesets,
        )

    def _stage(self, stage: int, overall: float | None) -> StageCount:
        """Sum up one stage, its conversion and its lift over all decided leads."""
        conversion = _ratio(self.converted[stage], self.outcomes[stage])
        lift = conversion / overall if conversion is not None and overall else None
        return StageCount(
            stage=_STAGE_NAMES.get(stage, str(stage)),
            leads=self.leads[stage],
            share=self.leads[stage] / self.decided,
            with_outcome=self.outcomes[stage],
            converted=self.converted[stage],
            conversion=conversion,
            lift=lift,
        )


def _ratio(part: int, whole: int) -> float | None:
    """Return part / whole, or None when there is nothing to divide by."""
    return part / whole if whole else None


def _percent(value: float | None) -> str:
    """Format a share as a percentage, or a dash when it is unknown."""
    return "-" if value is None else f"{value:.1%}"


def _times(value: float | None) -> str:
    """Format a lift as a multiple, or a dash when it is unknown."""
    return "-" if value is None else f"{value:.2f}x"


def _stage_row(stage: StageCount) -> tuple[str, ...]:
    """Return one stage as cells of the stage table."""
    return (
        stage.stage,
        f"{stage.leads:,}",
        _percent(stage.share),
        f"{stage.converted:,}",
        _percent(stage.conversion),
        _times(stage.lift),
    )


def _error_row(error: ReplayError) -> tuple[str, ...]:
    """Return one error as cells of the error table."""
    return (str(error.line), error.lead_id or "-", error.code, error.message)


def _table(rows: list[tuple[str, ...]], align: str) -> list[str]:
    """Align rows into columns, each to the left or right as align says."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(align))]
    return [
        "  ".join(
            cell.ljust(width) if side == "<" else cell.rjust(width)
            for cell, width, side in zip(row, widths, align, strict=True)
        ).rstrip()
        for row in rows
    ]
