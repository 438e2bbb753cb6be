"""Tests for the conversion of X Education leads into recorded requests."""

from __future__ import annotations

import csv
import datetime
import io
import json
import pathlib
import re
from typing import Any

import pytest
import yaml

from leadgate.xeducation import (
    EXPORT_AS_OF,
    ConversionError,
    ConversionStats,
    convert,
    record_line,
)

REPO = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "data" / "x_education_sample.csv"
RULESET = REPO / "rules" / "x_education.yaml"
REAL_FILE = REPO.parent / "shared" / "data" / "x_education_leads.csv"

FIRST_LEAD = "7927b2df-8bba-4d29-b9a2-b6e0beafe620"
STUDENT_LEAD = "8cc8c611-a219-4f35-ad23-fdfd2656bd8a"
REFERRED_LEAD = "3a0ce10f-d2c1-4213-a2bc-4f97bcd29699"

# The touch-point and consent flags, all No in the rows checked exactly.
ALL_NO_FLAGS = {
    "touch_search": False,
    "touch_magazine": False,
    "touch_newspaper_article": False,
    "touch_forums": False,
    "touch_newspaper": False,
    "touch_digital_ad": False,
    "touch_recommendation": False,
    "wants_course_updates": False,
    "wants_supply_chain_content": False,
    "wants_dm_content": False,
    "agrees_cheque_payment": False,
}


@pytest.fixture(scope="module")
def rows() -> dict[str, dict[str, str]]:
    """Reads the sample file into rows keyed by Prospect ID."""
    with SAMPLE.open(newline="", encoding="utf-8") as handle:
        return {row["Prospect ID"]: row for row in csv.DictReader(handle)}


def request_of(row: dict[str, str], as_of: datetime.datetime = EXPORT_AS_OF) -> Any:
    """Gives the request recorded for a row."""
    return record_line(row, as_of)["request"]


def attributes_of(row: dict[str, str]) -> Any:
    """Gives the attributes of the request recorded for a row."""
    return request_of(row)["attributes"]


def write_sample(path: pathlib.Path, rows: list[dict[str, str]]) -> None:
    """Writes rows under the sample's own header."""
    with SAMPLE.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def converted_sample() -> tuple[ConversionStats, list[Any]]:
    """Converts the sample file and parses every line it wrote."""
    out = io.StringIO()
    stats = convert(SAMPLE, out)
    return stats, [json.loads(line) for line in out.getvalue().splitlines()]


def test_record_line_maps_the_first_lead_exactly(
    rows: dict[str, dict[str, str]],
) -> None:
    """A lead with Select and empty cells becomes exactly the expected record."""
    record = record_line(rows[FIRST_LEAD], EXPORT_AS_OF)

    assert record == {
        "request": {
            "lead_id": FIRST_LEAD,
            "attributes": {
                "lead_origin": "API",
                "lead_source": "Olark Chat",
                "do_not_email": False,
                "do_not_call": False,
                "total_visits": 0,
                "time_on_website": 0,
                "page_views_per_visit": 0,
                "last_notable_activity": "Modified",
                "occupation": "Unemployed",
                "course_motive": "Better Career Prospects",
                **ALL_NO_FLAGS,
                "wants_interview_guide": False,
                "activity_index": "02.Medium",
                "profile_index": "02.Medium",
                "activity_score": 15,
                "profile_score": 15,
            },
            "activities": [
                {
                    "type": "page_visited_on_website",
                    "occurred_at": "2019-06-29T23:00:00Z",
                }
            ],
            "as_of": "2019-06-30T00:00:00Z",
            "ruleset": "x_education",
        },
        "outcome": {"converted": False},
    }


def test_record_line_maps_a_converted_student_exactly(
    rows: dict[str, dict[str, str]],
) -> None:
    """A converted student keeps country, city, specialization and a Yes offer flag."""
    attributes = attributes_of(rows[STUDENT_LEAD])

    assert attributes == {
        "lead_origin": "Landing Page Submission",
        "lead_source": "Direct Traffic",
        "do_not_email": False,
        "do_not_call": False,
        "total_visits": 2,
        "time_on_website": 1532,
        "page_views_per_visit": 2,
        "last_notable_activity": "Email Opened",
        "country": "India",
        "city": "Mumbai",
        "specialization": "Business Administration",
        "occupation": "Student",
        "course_motive": "Better Career Prospects",
        **ALL_NO_FLAGS,
        "wants_interview_guide": True,
        "activity_index": "02.Medium",
        "profile_index": "01.High",
        "activity_score": 14,
        "profile_score": 20,
    }
    assert record_line(rows[STUDENT_LEAD], EXPORT_AS_OF)["outcome"] == {
        "converted": True
    }


def test_record_line_leaves_out_empty_and_unchosen_values(
    rows: dict[str, dict[str, str]],
) -> None:
    """Empty numbers, an empty activity and Select drop-downs are left out."""
    request = request_of(rows[REFERRED_LEAD])
    attributes = request["attributes"]

    assert request["activities"] == []
    assert attributes["time_on_website"] == 705
    assert attributes["city"] == "Thane & Outskirts"
    for name in ("total_visits", "page_views_per_visit", "heard_from", "country"):
        assert name not in attributes


def test_record_line_never_carries_sales_notes(
    rows: dict[str, dict[str, str]],
) -> None:
    """Tags, Lead Quality, Lead Profile, Lead Number and Converted stay out."""
    row = rows[REFERRED_LEAD]
    notes = {row["Tags"], row["Lead Quality"], row["Lead Profile"], row["Lead Number"]}
    assert notes == {
        "Will revert after reading the email",
        "Low in Relevance",
        "Potential Lead",
        "659710",
    }

    attributes = attributes_of(row)

    assert notes.isdisjoint(str(value) for value in attributes.values())
    assert {"tags", "lead_quality", "lead_profile", "converted"}.isdisjoint(attributes)


def test_record_line_trims_but_keeps_case(rows: dict[str, dict[str, str]]) -> None:
    """Categories are trimmed and keep their case; a lower-case select is missing."""
    row = {**rows[FIRST_LEAD], "Lead Source": "  google ", "City": " select "}

    attributes = attributes_of(row)

    assert attributes["lead_source"] == "google"
    assert "city" not in attributes


@pytest.mark.parametrize(
    ("lead_id", "written"),
    [
        ("8850e4e1-0901-438f-b71d-1e2d15546263", "unknown"),
        ("0b861b2d-b557-4d01-bb3d-a6afd19c58ad", "Asia/Pacific Region"),
        ("a8531c22-fcf1-48f8-a711-fb5abf98ad87", "Russia"),
    ],
)
def test_record_line_drops_countries_iso_does_not_know(
    rows: dict[str, dict[str, str]], lead_id: str, written: str
) -> None:
    """A country name that pycountry cannot resolve is left out as missing."""
    assert rows[lead_id]["Country"] == written

    assert "country" not in attributes_of(rows[lead_id])


@pytest.mark.parametrize(
    ("lead_id", "attribute"),
    [
        ("9f1ca97f-5af5-4d1f-8c93-5883a947c6ac", "do_not_email"),
        ("65ce5db8-628d-4678-891a-dfdd85c7ec81", "do_not_call"),
        ("23f45ed6-f34c-4015-9b0a-581cf7fb79ee", "touch_search"),
        ("a50571c2-a35f-42e4-9cfb-0308c0c05e4a", "touch_recommendation"),
    ],
)
def test_record_line_reads_yes_as_true(
    rows: dict[str, dict[str, str]], lead_id: str, attribute: str
) -> None:
    """A Yes flag becomes the boolean true."""
    assert attributes_of(rows[lead_id])[attribute] is True


def test_record_line_keeps_whole_numbers_whole(
    rows: dict[str, dict[str, str]],
) -> None:
    """Numbers stored as text become ints when whole and floats otherwise."""
    attributes = attributes_of(rows["2a272436-5132-4136-86fa-dcc88c88f482"])

    assert type(attributes["total_visits"]) is int
    assert attributes["total_visits"] == 5
    assert type(attributes["page_views_per_visit"]) is float
    assert attributes["page_views_per_visit"] == 2.5


def test_record_line_times_the_activity_an_hour_before_as_of(
    rows: dict[str, dict[str, str]],
) -> None:
    """An as_of in another zone is written in UTC, the activity one hour earlier."""
    india = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    as_of = datetime.datetime(2020, 1, 1, 5, 30, tzinfo=india)

    request = request_of(rows["19a4a1ae-3250-4758-aa69-30009d13c3d0"], as_of)

    assert request["as_of"] == "2020-01-01T00:00:00Z"
    assert request["activities"] == [
        {"type": "sms_sent", "occurred_at": "2019-12-31T23:00:00Z"}
    ]


def test_record_line_refuses_a_naive_as_of(rows: dict[str, dict[str, str]]) -> None:
    """An as_of without a time zone is refused instead of guessed."""
    with pytest.raises(ValueError, match="time zone"):
        record_line(rows[FIRST_LEAD], datetime.datetime(2019, 6, 30))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("Do Not Email", "Maybe", "'Do Not Email': 'Maybe' is not Yes or No"),
        ("TotalVisits", "many", "'TotalVisits'"),
        ("TotalVisits", "inf", "'TotalVisits': 'inf' is not a finite number"),
        ("Converted", "yes", "'Converted' is 'yes', not 1 or 0"),
        ("Prospect ID", " ", "'Prospect ID' is empty"),
    ],
)
def test_record_line_names_the_column_of_a_bad_value(
    rows: dict[str, dict[str, str]], column: str, value: str, message: str
) -> None:
    """A value that cannot be read raises an error naming its column."""
    row = {**rows[FIRST_LEAD], column: value}

    with pytest.raises(ConversionError, match=re.escape(message)):
        record_line(row, EXPORT_AS_OF)


def test_convert_writes_one_record_per_sample_lead() -> None:
    """The sample gives 39 records, 23 converted, with the dropped values counted."""
    stats, records = converted_sample()

    assert stats == ConversionStats(
        leads=39, converted=23, without_activity=2, countries_dropped=3
    )
    assert len(records) == 39
    assert sum(record["outcome"]["converted"] for record in records) == 23
    assert {record["request"]["ruleset"] for record in records} == {"x_education"}


def test_convert_gives_every_last_activity_a_type() -> None:
    """Each Last Activity value in the sample becomes its snake_case activity type."""
    _, records = converted_sample()
    types = {
        activity["type"]
        for record in records
        for activity in record["request"]["activities"]
    }

    assert types == {
        "email_opened",
        "sms_sent",
        "olark_chat_conversation",
        "page_visited_on_website",
        "converted_to_lead",
        "email_bounced",
        "email_link_clicked",
        "form_submitted_on_website",
        "unreachable",
        "unsubscribed",
        "had_a_phone_conversation",
        "approached_upfront",
        "view_in_browser_link_clicked",
        "email_received",
        "email_marked_spam",
        "visited_booth_in_tradeshow",
        "resubscribed_to_emails",
    }


def test_convert_sends_only_what_the_ruleset_declares() -> None:
    """Every attribute and activity type written is declared by rules/x_education."""
    ruleset = yaml.safe_load(RULESET.read_text(encoding="utf-8"))
    _, records = converted_sample()

    for record in records:
        request = record["request"]
        assert set(request["attributes"]) <= set(ruleset["facts"])
        for activity in request["activities"]:
            assert activity["type"] in ruleset["activities"]


def test_convert_names_the_line_of_a_bad_row(
    rows: dict[str, dict[str, str]], tmp_path: pathlib.Path
) -> None:
    """A bad row stops the conversion with the file name and line number."""
    path = tmp_path / "leads.csv"
    broken = {**rows[STUDENT_LEAD], "Converted": "2"}
    write_sample(path, [rows[FIRST_LEAD], broken])

    expected = r"^leads\.csv line 3: column 'Converted' is '2'"
    with pytest.raises(ConversionError, match=expected):
        convert(path, io.StringIO())


def test_convert_refuses_a_file_without_needed_columns(tmp_path: pathlib.Path) -> None:
    """A file lacking a column the conversion reads is refused up front."""
    path = tmp_path / "leads.csv"
    path.write_text("Prospect ID,Converted\nabc,1\n", encoding="utf-8")

    with pytest.raises(ConversionError, match="lacks columns: Last Activity, Lead"):
        convert(path, io.StringIO())


@pytest.mark.realdata
@pytest.mark.skipif(
    not REAL_FILE.exists(),
    reason=f"needs the X Education lead file at {REAL_FILE}",
)
def test_convert_reads_the_whole_real_file() -> None:
    """The real file gives 9,240 leads, 3,561 of them converted."""
    out = io.StringIO()

    stats = convert(REAL_FILE, out)

    assert stats == ConversionStats(
        leads=9240, converted=3561, without_activity=103, countries_dropped=8
    )
    assert len(out.getvalue().splitlines()) == 9240
