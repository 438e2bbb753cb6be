"""All 9,240 real X Education leads, decided in-process with the shipped ruleset."""

from __future__ import annotations

import io
import pathlib
from collections import Counter
from datetime import datetime

import orjson
import pytest

from leadgate.decision import LeadInput
from leadgate.loader import load_file
from leadgate.ruleset import ActivityRecord, Stage
from leadgate.version import load_version
from leadgate.xeducation import convert

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "x_education_leads.csv"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not DATA.is_file(), reason=f"real lead data not found at {DATA}"
    ),
]


def _lead(request: dict[str, object]) -> LeadInput:
    activities = [
        ActivityRecord(a["type"], datetime.fromisoformat(a["occurred_at"]), "")
        for a in request["activities"]  # type: ignore[attr-defined]
    ]
    return LeadInput(
        str(request["lead_id"]),
        request["attributes"],  # type: ignore[arg-type]
        activities,
        datetime.fromisoformat(str(request["as_of"])),
    )


def test_realdata_every_lead_is_decided_and_stages_rank_conversion() -> None:
    """9,240 leads, no errors; conversion rises with each stage from DQ to SQL."""
    buffer = io.StringIO()
    convert(DATA, buffer)
    version = load_version(load_file(REPO / "rules" / "x_education.yaml"))
    leads, converted = Counter[Stage](), Counter[Stage]()
    for line in buffer.getvalue().splitlines():
        record = orjson.loads(line)
        stage = version.decide(_lead(record["request"])).stage
        leads[stage] += 1
        converted[stage] += record["outcome"]["converted"]
    version.release()

    assert leads.total() == 9240
    assert converted.total() == 3561
    rates = [converted[s] / leads[s] for s in sorted(Stage)]
    assert rates == sorted(rates)
    assert rates[-1] > 0.8
    assert rates[0] < 0.05
