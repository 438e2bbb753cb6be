"""The engine adapter: the only module that talks to durable_rules.

durable_rules 2.0.28 is used through its C core alone. Its `Host` is never created, so
none of its background threads run; each evaluation asserts facts under one session id
that this adapter owns, runs the activations in the calling thread, and always deletes
the session. Values reach the C core as JSON written here, because the core rejects
numbers written with an exponent.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from importlib import metadata
from typing import Any

import durable_rules_engine as dre
import orjson

from leadgate.errors import EvaluationError, RuleDefectError, RulesetError

SESSION = "s0"
ENGINE_VERSION = f"durable_rules {metadata.version('durable_rules')}"
CHECK_TIMEOUT = 20.0
Fact = Mapping[str, Any]
Fire = Callable[[str], Sequence[Fact]]


class FiringLimitError(RuleDefectError):
    """The rules kept firing past the limit; names the rules that fired most."""

    def __init__(self, fired: Counter[str], limit: int) -> None:
        self.fired = fired
        self.limit = limit
        super().__init__(self.describe(lambda rule: rule))

    def describe(self, name_of: Callable[[str], str]) -> str:
        """The message, with each engine rule named as name_of says."""
        busiest = ", ".join(
            f"{name_of(rule)} ({n}x)" for rule, n in self.fired.most_common(5)
        )
        return f"rules fired more than {self.limit} times: {busiest}"


def encode(value: Any) -> str:
    """Write JSON the C core reads: plain decimals, never exponents."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        return _decimal(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        items = (f"{encode(str(k))}:{encode(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode(v) for v in value) + "]"
    raise TypeError(f"cannot send {type(value).__name__} to the engine")


def encode_fact(fact: Fact) -> str:
    """Write a flat fact, through orjson when no value could come out as an exponent."""
    for value in fact.values():
        if type(value) is float and value and not 1e-5 <= abs(value) < 1e15:
            return encode(fact)
        if isinstance(value, Decimal | Mapping | list | tuple):
            return encode(fact)
    return orjson.dumps(fact).decode()


def _decimal(number: float | Decimal) -> str:
    """Plain decimal text; a float keeps its point, so the engine computes in floats."""
    if isinstance(number, float):
        text = format(Decimal(repr(number)), "f")
        return text if "." in text else text + ".0"
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


class EngineRuleset:
    """One compiled ruleset in the engine, evaluated one session at a time."""

    def __init__(self, name: str, definition: Mapping[str, Any]) -> None:
        try:
            self._handle = dre.create_ruleset(name, encode(definition))
        except dre.error as error:
            raise RulesetError(f"the engine refused the ruleset: {error}") from None
        self._lock = threading.Lock()
        self._closed = False

    def evaluate(self, facts: Sequence[Fact], fire: Fire, *, max_firings: int) -> None:
        """Assert facts in a fresh session and run every activation to the end."""
        with self._lock:
            if self._closed:
                raise EvaluationError("ruleset version was released")
            try:
                offset = 0
                for fact in facts:
                    offset = self._assert(fact)
                self._run(offset, fire, max_firings)
            finally:
                self._delete_session()

    @property
    def closed(self) -> bool:
        """Whether the ruleset was released from the engine."""
        return self._closed

    def close(self) -> None:
        """Release the ruleset from the engine; later evaluations fail cleanly."""
        with self._lock:
            if not self._closed:
                self._closed = True
                dre.delete_ruleset(self._handle)

    def _assert(self, fact: Fact) -> int:
        try:
            text = encode_fact({**fact, "sid": SESSION})
            code, offset = dre.assert_fact(self._handle, text)
        except dre.error as error:
            raise EvaluationError(f"the engine refused a fact: {error}") from None
        return int(offset) if code in (0, 1, 2) else 0

    def _run(self, offset: int, fire: Fire, max_firings: int) -> None:
        fired: Counter[str] = Counter()
        result = dre.start_action_for_state(self._handle, offset)
        while result:
            state, message = result[0], result[1]
            rule = next(iter(orjson.loads(message)))
            fired[rule] += 1
            try:
                if fired.total() > max_firings:
                    raise FiringLimitError(fired, max_firings)
                for fact in fire(rule):
                    self._assert(fact)
            except BaseException:
                dre.abandon_action(self._handle, offset)
                raise
            dre.update_state(self._handle, state)
            following = dre.complete_and_start_action(self._handle, offset)
            result = (state, following) if following else None

    def _delete_session(self) -> None:
        with contextlib.suppress(dre.error):  # no session: nothing was asserted
            dre.delete_state(self._handle, SESSION)


def check_isolated(
    name: str,
    definition: Mapping[str, Any],
    facts: Sequence[Fact],
    *,
    timeout: float = CHECK_TIMEOUT,
) -> None:
    """Compile and run a ruleset in a child process, so a crash or hang stays there."""
    payload = encode({"name": name, "definition": definition, "facts": list(facts)})
    command = [sys.executable, "-m", "leadgate.engine"]
    try:
        done = subprocess.run(
            command,
            input=payload,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise RulesetError("the engine hung compiling this ruleset") from None
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["crashed"])[-1]
        raise RulesetError(f"the engine failed on this ruleset: {tail[:300]}")


def _check_main() -> None:
    request = json.loads(sys.stdin.read())
    ruleset = EngineRuleset(request["name"], request["definition"])
    ruleset.evaluate(request["facts"], lambda rule: (), max_firings=100_000)
    ruleset.close()


if __name__ == "__main__":
    _check_main()
