"""The errors Leadgate raises, one root per audience: authors, callers, operators."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LeadgateError(Exception):
    """Root of every error Leadgate raises on purpose."""


class RulesetError(LeadgateError):
    """A rules file is wrong: names the file, line, rule and what to change."""

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        line: int = 0,
        rule_id: str = "",
        suggestion: str = "",
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.rule_id = rule_id
        self.suggestion = suggestion
        super().__init__(self.describe())

    def describe(self) -> str:
        """Render the error as `file:line: rule 'id': message (did you mean ...?)`."""
        where = self.path or "<rules>"
        if self.line:
            where = f"{where}:{self.line}"
        rule = f" rule '{self.rule_id}':" if self.rule_id else ""
        hint = f" ({self.suggestion})" if self.suggestion else ""
        return f"{where}:{rule} {self.message}{hint}"

    def located(
        self, *, path: str = "", line: int = 0, rule_id: str = ""
    ) -> RulesetError:
        """Return a copy that fills in whatever location this error still lacks."""
        return RulesetError(
            self.message,
            path=self.path or path,
            line=self.line or line,
            rule_id=self.rule_id or rule_id,
            suggestion=self.suggestion,
        )


class CallerError(LeadgateError):
    """A request cannot be served as sent; the caller must change it."""


class LeadInputError(CallerError):
    """A lead breaks its ruleset's schema; names the field, never the value."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class NotFoundError(CallerError):
    """The request names a ruleset or version that is not loaded."""


class OperatorError(LeadgateError):
    """The service cannot answer until an operator acts (no valid ruleset, config)."""


class NoActiveRulesetError(OperatorError):
    """No valid version of the asked ruleset is loaded."""


class EvaluationError(OperatorError):
    """The engine failed while deciding a lead; the lead gets no decision."""


class RuleDefectError(EvaluationError):
    """The ruleset cannot decide this lead (a runaway rule or pattern); names it."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Suggest the closest known name to a misspelt one, or nothing."""
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""
