"""Turns the X Education lead file into recorded qualify requests for replay."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import math
import pathlib
import re
from collections.abc import Callable, Sequence
from typing import Final, Literal, TextIO

import orjson
import pycountry

__all__ = [
    "EXPORT_AS_OF",
    "ConversionError",
    "ConversionStats",
    "convert",
    "record_line",
]

EXPORT_AS_OF: Final = datetime.datetime(2019, 6, 30, tzinfo=datetime.UTC)
"""The evaluation time every lead gets, because the file holds no dates at all."""

# The file says what the lead did last but not when; one hour before the export is a
# stand-in that keeps the activity inside every window a rule can reasonably ask for.
LAST_ACTIVITY_AGE: Final = datetime.timedelta(hours=1)

RULESET: Final = "x_education"

_IDENTIFIER: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")

Kind = Literal["keyword", "boolean", "number", "country"]


class ConversionError(ValueError):
    """A lead row holds a value that the converter cannot read."""


@dataclasses.dataclass(frozen=True)
class Column:
    """One CSV column carried into the request as a typed attribute."""

    header: str
    attribute: str
    kind: Kind


@dataclasses.dataclass(frozen=True)
class ConversionStats:
    """What one conversion wrote: leads, outcomes and the values it had to drop."""

    leads: int = 0
    converted: int = 0
    without_activity: int = 0
    countries_dropped: int = 0


COLUMNS: Final[tuple[Column, ...]] = (
    Column("Lead Origin", "lead_origin", "keyword"),
    Column("Lead Source", "lead_source", "keyword"),
    Column("Do Not Email", "do_not_email", "boolean"),
    Column("Do Not Call", "do_not_call", "boolean"),
    Column("TotalVisits", "total_visits", "number"),
    Column("Total Time Spent on Website", "time_on_website", "number"),
    Column("Page Views Per Visit", "page_views_per_visit", "number"),
    Column("Last Notable Activity", "last_notable_activity", "keyword"),
    Column("Country", "country", "country"),
    Column("City", "city", "keyword"),
    Column("Specialization", "specialization", "keyword"),
    Column("What is your current occupation", "occupation", "keyword"),
    Column("What matters most to you in choosing a course", "course_motive", "keyword"),
    Column("How did you hear about X Education", "heard_from", "keyword"),
    Column("Search", "touch_search", "boolean"),
    Column("Magazine", "touch_magazine", "boolean"),
    Column("Newspaper Article", "touch_newspaper_article", "boolean"),
    Column("X Education Forums", "touch_forums", "boolean"),
    Column("Newspaper", "touch_newspaper", "boolean"),
    Column("Digital Advertisement", "touch_digital_ad", "boolean"),
    Column("Through Recommendations", "touch_recommendation", "boolean"),
    Column("Receive More Updates About Our Courses", "wants_course_updates", "boolean"),
    Column(
        "Update me on Supply Chain Content", "wants_supply_chain_content", "boolean"
    ),
    Column("Get updates on DM Content", "wants_dm_content", "boolean"),
    Column(
        "I agree to pay the amount through cheque", "agrees_cheque_payment", "boolean"
    ),
    Column(
        "A free copy of Mastering The Interview", "wants_interview_guide", "boolean"
    ),
    Column("Asymmetrique Activity Index", "activity_index", "keyword"),
    Column("Asymmetrique Profile Index", "profile_index", "keyword"),
    Column("Asymmetrique Activity Score", "activity_score", "number"),
    Column("Asymmetrique Profile Score", "profile_score", "number"),
)
"""The columns that become attributes, in the order they are written."""

# Tags, Lead Quality and Lead Profile are notes staff wrote after working the lead, so
# they are never sent: a rule reading them would predict the outcome from the outcome.
_LEAD_ID: Final = "Prospect ID"
_LAST_ACTIVITY: Final = "Last Activity"
_CONVERTED: Final = "Converted"
_REQUIRED: Final = (_LEAD_ID, _LAST_ACTIVITY, _CONVERTED, *(c.header for c in COLUMNS))


def convert(
    csv_path: pathlib.Path,
    out: TextIO,
    *,
    as_of: datetime.datetime = EXPORT_AS_OF,
) -> ConversionStats:
    """Writes one recorded request per lead in the file and counts what was written."""
    _utc(as_of)  # refuses a naive as_of before anything is written
    leads = converted = without_activity = countries_dropped = 0
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        _check_header(reader.fieldnames, csv_path)
        for row in reader:
            try:
                record = record_line(row, as_of)
            except ConversionError as exc:
                where = f"{csv_path.name} line {reader.line_num}"
                raise ConversionError(f"{where}: {exc}") from exc
            out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE).decode())

            leads += 1
            converted += _converted(row)
            without_activity += _text(row, _LAST_ACTIVITY) is None
            countries_dropped += _country_dropped(row)

    return ConversionStats(leads, converted, without_activity, countries_dropped)


def record_line(row: dict[str, str], as_of: datetime.datetime) -> dict[str, object]:
    """Turns one lead row into a recorded request for the x_education ruleset."""
    moment = _utc(as_of)
    lead_id = _text(row, _LEAD_ID)
    if lead_id is None:
        raise ConversionError(f"column {_LEAD_ID!r} is empty")

    request: dict[str, object] = {
        "lead_id": lead_id,
        "attributes": _attributes(row),
        "activities": _activities(row, moment),
        "as_of": _rfc3339(moment),
        "ruleset": RULESET,
    }
    return {"request": request, "outcome": {"converted": _converted(row)}}


def _check_header(fieldnames: Sequence[str] | None, csv_path: pathlib.Path) -> None:
    """Refuses a file that lacks any column the conversion reads."""
    missing = [name for name in _REQUIRED if name not in (fieldnames or ())]
    if missing:
        raise ConversionError(f"{csv_path.name} lacks columns: {', '.join(missing)}")


def _attributes(row: dict[str, str]) -> dict[str, object]:
    """Cleans every mapped column, leaving out the ones that are missing."""
    attributes: dict[str, object] = {}
    for column in COLUMNS:
        text = _text(row, column.header)
        if text is None:
            continue
        try:
            value = _CLEANERS[column.kind](text)
        except ValueError as exc:
            raise ConversionError(f"column {column.header!r}: {exc}") from exc
        if value is not None:
            attributes[column.attribute] = value
    return attributes


def _activities(row: dict[str, str], as_of: datetime.datetime) -> list[dict[str, str]]:
    """Gives the last activity, if any, timed one hour before the export."""
    label = _text(row, _LAST_ACTIVITY)
    if label is None:
        return []
    occurred_at = _rfc3339(as_of - LAST_ACTIVITY_AGE)
    return [{"type": _activity_type(label), "occurred_at": occurred_at}]


def _activity_type(label: str) -> str:
    """Spells an activity label as a snake_case identifier: "SMS Sent" is sms_sent."""
    name = re.sub(r"[^a-z0-9]+", "_", label.casefold()).strip("_")
    if not _IDENTIFIER.fullmatch(name):
        raise ConversionError(f"activity {label!r} gives no valid type name")
    return name


def _text(row: dict[str, str], header: str) -> str | None:
    """Reads a trimmed cell, with empty cells and the unchosen "Select" as missing."""
    text = (row.get(header) or "").strip()
    if not text or text.casefold() == "select":
        return None
    return text


def _converted(row: dict[str, str]) -> bool:
    """Reads the outcome, which must be 1 or 0."""
    text = (row.get(_CONVERTED) or "").strip()
    if text not in ("0", "1"):
        raise ConversionError(f"column {_CONVERTED!r} is {text!r}, not 1 or 0")
    return text == "1"


def _country_dropped(row: dict[str, str]) -> bool:
    """Tells whether the row names a country that the conversion left out."""
    text = _text(row, "Country")
    return text is not None and _country(text) is None


def _keyword(text: str) -> str:
    """Keeps a category as written; the server folds its case."""
    return text


def _flag(text: str) -> bool:
    """Reads a Yes/No flag."""
    answers = {"yes": True, "no": False}
    if text.casefold() not in answers:
        raise ValueError(f"{text!r} is not Yes or No")
    return answers[text.casefold()]


def _number(text: str) -> int | float:
    """Reads a number stored as text, whole numbers staying whole."""
    try:
        return int(text)
    except ValueError:
        number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number")
    return number


def _country(text: str) -> str | None:
    """Keeps a country name that ISO 3166 knows; "unknown" and regions are missing."""
    try:
        pycountry.countries.lookup(text)
    except LookupError:
        return None
    return text


_CLEANERS: Final[dict[Kind, Callable[[str], object]]] = {
    "keyword": _keyword,
    "boolean": _flag,
    "number": _number,
    "country": _country,
}


def _utc(moment: datetime.datetime) -> datetime.datetime:
    """Moves an aware time to UTC; a naive one is refused rather than guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("as_of needs a time zone")
    return moment.astimezone(datetime.UTC)


def _rfc3339(moment: datetime.datetime) -> str:
    """Writes a UTC time the way protobuf's JSON mapping spells a Timestamp."""
    return moment.isoformat().replace("+00:00", "Z")
