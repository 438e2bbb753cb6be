"""The `leadgate` command line: serve, check and test rules, qualify, record, replay."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from collections.abc import Callable, Sequence

import orjson

from leadgate import __version__

Handler = Callable[[argparse.Namespace], int]
DEFAULT_TARGET = "localhost:50051"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return its exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _positive(text: str) -> int:
    """An argument that must be a whole number of at least 1."""
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of at least 1: {text}"
        )
    return int(text)


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LEADGATE_{name}", default)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadgate",
        description="Decide how far a sales lead has come with versioned rules.",
        epilog="Each command has its own --help. Options also read LEADGATE_* "
        "environment variables (e.g. LEADGATE_ADDRESS, LEADGATE_TARGET).",
    )
    parser.add_argument(
        "--version", action="version", version=f"leadgate {__version__}"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _serve_parser(commands)
    _check_parser(commands)
    _test_parser(commands)
    _qualify_parser(commands)
    _record_parser(commands)
    _replay_parser(commands)
    return parser


def _serve_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    serve = commands.add_parser(
        "serve", help="run the gRPC server with a rules directory"
    )
    serve.add_argument(
        "--address",
        default=_env("ADDRESS", "localhost:50051"),
        help="host:port to listen on (default %(default)s)",
    )
    serve.add_argument(
        "--rules",
        type=pathlib.Path,
        default=_env("RULES", "rules"),
        help="directory of ruleset files (default %(default)s)",
    )
    serve.add_argument(
        "--default-ruleset",
        default=_env("DEFAULT_RULESET", "b2b_default"),
        help="ruleset for calls that name none (default %(default)s)",
    )
    serve.add_argument(
        "--workers",
        type=_positive,
        default=_env("WORKERS", "4"),
        help="request threads (default %(default)s)",
    )
    serve.add_argument(
        "--grace",
        type=float,
        default=float(_env("GRACE", "10")),
        help="seconds in-flight calls get on shutdown (default %(default)s)",
    )
    serve.add_argument(
        "--no-watch",
        action="store_true",
        help="load the rules at start only; do not reload on change",
    )
    serve.add_argument(
        "--poll",
        action="store_true",
        default=_env("POLL", "") not in ("", "0", "false"),
        help="poll for rule changes (for file systems without inotify)",
    )
    _log_options(serve)
    serve.set_defaults(handler=_serve)


def _log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    parser.add_argument(
        "--log-format",
        default=_env("LOG_FORMAT", "auto"),
        choices=["auto", "json", "console"],
        help="auto: readable on a terminal, JSON otherwise",
    )


def _serve(args: argparse.Namespace) -> int:
    from leadgate.app import Config, serve
    from leadgate.errors import OperatorError
    from leadgate.logs import configure_logging

    configure_logging(args.log_level, args.log_format)
    config = Config(
        address=args.address,
        rules=args.rules,
        default_ruleset=args.default_ruleset,
        workers=args.workers,
        grace=args.grace,
        watch=not args.no_watch,
        poll=args.poll,
    )
    try:
        serve(config)
    except OperatorError as error:
        print(f"leadgate: {error}", file=sys.stderr)
        return 1
    return 0


def _check_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    check = commands.add_parser(
        "check", help="load and compile rules files without running their tests"
    )
    check.add_argument(
        "paths", nargs="+", type=pathlib.Path, help="files or directories"
    )
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from leadgate.compiler import compile_ruleset
    from leadgate.errors import RulesetError
    from leadgate.loader import load_file
    from leadgate.store import rule_files

    failed = _missing_paths(args.paths)
    for path in (f for p in args.paths for f in rule_files(p)):
        try:
            source = load_file(path)
            program = compile_ruleset(source)
        except RulesetError as error:
            failed += 1
            print(f"ERROR {error.located(path=str(path)).describe()}")
            continue
        print(
            f"OK    {path}: {source.name} {source.version}, {len(program.rules)} rules"
        )
    return 1 if failed else 0


def _missing_paths(paths: Sequence[pathlib.Path]) -> int:
    """Report paths that do not exist, and count them as failures."""
    missing = [path for path in paths if not path.exists()]
    for path in missing:
        print(f"ERROR {path}: no such file or directory")
    return len(missing)


def _test_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    test = commands.add_parser(
        "test", help="run the test cases that sit beside the rules"
    )
    test.add_argument(
        "paths", nargs="+", type=pathlib.Path, help="files or directories"
    )
    test.add_argument(
        "-v", "--verbose", action="store_true", help="list passing tests too"
    )
    test.set_defaults(handler=_test)


def _test(args: argparse.Namespace) -> int:
    from leadgate.errors import RulesetError
    from leadgate.loader import load_file
    from leadgate.ruletests import run_tests
    from leadgate.store import rule_files
    from leadgate.version import load_version

    failed, passed = _missing_paths(args.paths), 0
    for path in (f for p in args.paths for f in rule_files(p)):
        try:
            version = load_version(load_file(path))
        except RulesetError as error:
            failed += 1
            print(f"ERROR {error.located(path=str(path)).describe()}")
            continue
        for outcome in run_tests(version):
            passed += outcome.passed
            failed += not outcome.passed
            if args.verbose or not outcome.passed:
                print(outcome.describe())
        version.release()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def _qualify_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    qualify = commands.add_parser(
        "qualify", help="decide one lead through a running server"
    )
    qualify.add_argument(
        "lead",
        nargs="?",
        default="-",
        help="JSON file with the lead, or - for standard input",
    )
    _client_options(qualify)
    qualify.set_defaults(handler=_qualify)


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        default=_env("TARGET", DEFAULT_TARGET),
        help="server host:port (default %(default)s)",
    )
    parser.add_argument(
        "--ruleset", help="ruleset to use instead of the lead's or default"
    )
    parser.add_argument(
        "--version", dest="ruleset_version", help="pin a ruleset version"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="deadline in seconds"
    )


def _qualify(args: argparse.Namespace) -> int:
    from leadgate_client import LeadgateClient, LeadgateError, decision_to_dict

    try:
        text = (
            sys.stdin.read()
            if args.lead == "-"
            else pathlib.Path(args.lead).read_text()
        )
    except (OSError, UnicodeDecodeError) as error:
        print(f"leadgate: cannot read the lead: {error}", file=sys.stderr)
        return 2
    try:
        lead = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        print(f"leadgate: the lead is not valid JSON: {error}", file=sys.stderr)
        return 2
    if not isinstance(lead, dict):
        print("leadgate: the lead must be a JSON object", file=sys.stderr)
        return 2
    lead = lead.get("request", lead)  # a recorded line works as it is
    if args.ruleset:
        lead["ruleset"] = args.ruleset
    if args.ruleset_version:
        lead["version"] = args.ruleset_version
    try:
        with LeadgateClient(args.target, timeout=args.timeout) as client:
            decision = client.qualify(lead)
    except (LeadgateError, ValueError) as error:
        print(f"leadgate: {error}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(
        orjson.dumps(decision_to_dict(decision), option=orjson.OPT_INDENT_2)
    )
    sys.stdout.write("\n")
    return 0


def _record_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    record = commands.add_parser(
        "record-x-education",
        help="turn x_education_leads.csv into recorded requests (JSON lines)",
    )
    record.add_argument("csv", type=pathlib.Path, help="path to x_education_leads.csv")
    record.add_argument(
        "-o", "--output", default="-", help="output file (default stdout)"
    )
    record.set_defaults(handler=_record)


def _record(args: argparse.Namespace) -> int:
    from leadgate.xeducation import convert

    if args.output == "-":
        stats = convert(args.csv, sys.stdout)
    else:
        pathlib.Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as out:
            stats = convert(args.csv, out)
    print(
        f"recorded {stats.leads} leads ({stats.converted} converted)", file=sys.stderr
    )
    return 0


def _replay_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    replay = commands.add_parser(
        "replay", help="send recorded requests through a running server and report"
    )
    replay.add_argument(
        "recorded", type=pathlib.Path, help="JSON lines of recorded requests"
    )
    _client_options(replay)
    replay.add_argument("--batch-size", type=int, default=200, help="leads per call")
    replay.add_argument("--json", action="store_true", help="print the report as JSON")
    replay.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )
    replay.set_defaults(handler=_replay, timeout=30.0)


def _replay(args: argparse.Namespace) -> int:
    from leadgate.replay import replay

    report = replay(
        args.recorded,
        args.target,
        batch_size=args.batch_size,
        ruleset=args.ruleset,
        version=args.ruleset_version,
        timeout=args.timeout,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    if args.json:
        sys.stdout.buffer.write(
            orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2)
        )
        sys.stdout.write("\n")
    else:
        print(report.to_text())
    return 1 if report.to_dict().get("errors") else 0


if __name__ == "__main__":
    raise SystemExit(main())
