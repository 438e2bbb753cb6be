"""Memory over many reloads: resident size after 300 reloads against after 30.

Each reload writes a new version of the shipped b2b_default ruleset, loads it (compile,
engine, tests) and retires the previous one. A ratio near 1.0 means retired versions are
released from the engine and memory stays flat.

    .venv/bin/python bench/bench_reload.py [--reloads 300]
"""

from __future__ import annotations

import argparse
import pathlib
import resource
import tempfile

from leadgate.logs import configure_logging
from leadgate.store import RulesStore

REPO = pathlib.Path(__file__).resolve().parent.parent


def rss_mib() -> float:
    """The process's current resident set size in MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=300)
    args = parser.parse_args()
    configure_logging("warning")
    text = (REPO / "rules" / "b2b_default.yaml").read_text()
    tests = (REPO / "rules" / "b2b_default.tests.yaml").read_text()
    with tempfile.TemporaryDirectory() as directory:
        rules = pathlib.Path(directory)
        (rules / "b2b_default.tests.yaml").write_text(tests)
        store = RulesStore(rules, isolated=False)
        baseline = 0.0
        for reload in range(1, args.reloads + 1):
            version = f"version: 2026.12.{reload}"
            (rules / "b2b_default.yaml").write_text(
                text.replace("version: 2026.12.0", version)
            )
            report = store.load()
            if report.errors or not report.activated:
                raise SystemExit(f"reload {reload} failed: {report}")
            if reload == args.reloads // 10:
                baseline = rss_mib()
        final = rss_mib()
        store.close()
    print(f"reloads                  {args.reloads}")
    print(f"RSS after {args.reloads // 10:<4} reloads    {baseline:8.1f} MiB")
    print(f"RSS after {args.reloads:<4} reloads    {final:8.1f} MiB")
    print(f"ratio                    {final / baseline:8.3f}")


if __name__ == "__main__":
    main()
