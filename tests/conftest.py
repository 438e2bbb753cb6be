"""Shared fixtures: the shipped rules loaded once, a server on port 0, a client."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import pytest

from leadgate.app import Config, Running, create_server
from leadgate.store import RulesStore
from leadgate_client import LeadgateClient

REPO = pathlib.Path(__file__).resolve().parent.parent
MakeRulesDir = Callable[[str, str], pathlib.Path]


@pytest.fixture(scope="session")
def store() -> Iterator[RulesStore]:
    """The shipped rulesets, loaded in this process once for the whole run."""
    rules = RulesStore(REPO / "rules", isolated=False)
    report = rules.load()
    assert report.errors == ()
    yield rules
    rules.close()


@pytest.fixture(scope="session")
def running(store: RulesStore) -> Iterator[Running]:
    """A real server for the shipped rules on a free local port."""
    started = create_server(Config(address="127.0.0.1:0"), store)
    yield started
    started.stop(0)


@pytest.fixture
def client(running: Running) -> Iterator[LeadgateClient]:
    """A client connected to the running server."""
    with LeadgateClient(f"127.0.0.1:{running.port}", timeout=10.0) as connected:
        yield connected


@pytest.fixture
def make_rules_dir(tmp_path: pathlib.Path) -> MakeRulesDir:
    """A function that writes YAML text as a file in a temporary rules directory."""
    directory = tmp_path / "rules"

    def make(name: str, text: str) -> pathlib.Path:
        directory.mkdir(exist_ok=True)
        (directory / name).write_text(text, encoding="utf-8")
        return directory

    return make
