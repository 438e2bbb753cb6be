"""Decision cost against the engine floor, measured in one run on one machine.

The baseline is the same compiled ruleset asserted into durable_rules with the same
facts and a no-op action: what the engine alone costs. The ratio is what cleaning,
counting, Python-side checks, scoring and explanation add on top. Leads come from the
real X Education file beside the checkout.

    .venv/bin/python bench/bench_decide.py [--leads 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import pathlib
import statistics
import time
from collections.abc import Callable
from datetime import datetime

import orjson

from leadgate.decision import LeadInput, _facts
from leadgate.loader import load_file
from leadgate.ruleset import ActivityRecord
from leadgate.version import LoadedVersion, load_version
from leadgate.xeducation import convert

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "x_education_leads.csv"


def real_leads(limit: int) -> list[LeadInput]:
    """The first `limit` real leads as the server would receive them."""
    buffer = io.StringIO()
    convert(DATA, buffer)
    leads = []
    for line in buffer.getvalue().splitlines()[:limit]:
        request = orjson.loads(line)["request"]
        activities = [
            ActivityRecord(a["type"], datetime.fromisoformat(a["occurred_at"]))
            for a in request["activities"]
        ]
        as_of = datetime.fromisoformat(request["as_of"])
        leads.append(
            LeadInput(request["lead_id"], request["attributes"], activities, as_of)
        )
    return leads


def per_lead(run: Callable[[LeadInput], object], leads: list[LeadInput]) -> float:
    """Microseconds per lead for one pass over the leads."""
    started = time.perf_counter()
    for lead in leads:
        run(lead)
    return (time.perf_counter() - started) / len(leads) * 1e6


def engine_only(version: LoadedVersion) -> Callable[[LeadInput], object]:
    """Assert the lead's facts and run the activations with a no-op action."""
    program = version.program
    counts = {ref.key: 0 for ref in program.counts}

    def run(lead: LeadInput) -> object:
        values, _ = program.source.schema.clean(lead.attributes)
        facts = _facts(program, values, counts)
        version.engine.evaluate(facts, lambda rule: (), max_firings=10_000)
        return None

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not DATA.is_file():
        raise SystemExit(f"needs the real lead data at {DATA}")
    version = load_version(load_file(REPO / "rules" / "x_education.yaml"))
    leads = real_leads(args.leads)
    per_lead(version.decide, leads[:200])  # warm up
    full, floor = [], []
    for _ in range(args.rounds):
        full.append(per_lead(version.decide, leads))
        floor.append(per_lead(engine_only(version), leads))
    ours, base = statistics.median(full), statistics.median(floor)
    print(f"leads per round      {len(leads)}")
    print(f"decide, full         {ours:8.1f} us/lead  ({1e6 / ours:,.0f}/s)")
    print(f"engine floor         {base:8.1f} us/lead  ({1e6 / base:,.0f}/s)")
    print(f"ratio full / floor   {ours / base:8.2f}")
    version.release()


if __name__ == "__main__":
    main()
