"""The condition language: tokens and a parser from `when:` text to a syntax tree."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from leadgate.errors import RulesetError

UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
UNITS["w"] = timedelta(weeks=1)
KEYWORDS = frozenset({"and", "or", "not", "in", "matches", "true", "false"})
MAX_DEPTH = 64
COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<duration>\d+[mhdw]\b)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>==|!=|<=|>=|\.\.|[<>+\-*/(),\[\]:|])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


@dataclass(frozen=True)
class Node:
    """A node of the syntax tree; `pos` is its offset in the condition text."""

    pos: int


@dataclass(frozen=True)
class Literal(Node):
    value: Decimal | str | bool


@dataclass(frozen=True)
class Name(Node):
    name: str


@dataclass(frozen=True)
class Window:
    """Ages `min_age <= age < max_age` of an activity, counted back from as_of."""

    min_age: timedelta
    max_age: timedelta | None
    text: str


@dataclass(frozen=True)
class Count(Node):
    activity: str  # an activity type, or "any"
    window: Window | None


@dataclass(frozen=True)
class Presence(Node):
    name: Name
    present: bool  # exists() is True, missing() is False


@dataclass(frozen=True)
class Arithmetic(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Negative(Node):
    operand: Node


@dataclass(frozen=True)
class Compare(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Member(Node):
    item: Node
    items: tuple[Literal, ...] | Name  # an inline list, or a named list
    negated: bool


@dataclass(frozen=True)
class Matches(Node):
    subject: Node
    pattern: str


@dataclass(frozen=True)
class Logic(Node):
    op: str  # "and" or "or"
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Not(Node):
    operand: Node


def tokenize(text: str) -> list[Token]:
    """Split a condition into tokens, or raise at the first character not understood."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.lastgroup is None:
            raise _error(text, pos, f"unexpected character {text[pos]!r}")
        if match.lastgroup != "space":
            tokens.append(Token(match.lastgroup, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def parse(text: str) -> Node:
    """Parse a condition into a syntax tree, raising RulesetError with the column."""
    return _Parser(text).parse()


def _error(text: str, pos: int, message: str) -> RulesetError:
    return RulesetError(f"{message} at column {pos + 1} of condition: {text}")


class _Parser:
    """A recursive-descent parser; one method per precedence level."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    def nest(self) -> None:
        """Count one more level of nesting; refuse conditions nested absurdly deep."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"condition nested more than {MAX_DEPTH} levels deep")

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.token
        self.index += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.token
        return token.kind in ("op", "name") and token.text in texts

    def expect(self, text: str) -> Token:
        if not self.at(text):
            raise self.fail(f"expected '{text}'")
        return self.advance()

    def fail(self, message: str) -> RulesetError:
        found = self.token.text or "the end"
        return _error(self.text, self.token.pos, f"{message}, found '{found}'")

    def parse(self) -> Node:
        if self.token.kind == "end":
            raise self.fail("expected a condition")
        node = self.logic("or")
        if self.token.kind != "end":
            raise self.fail("expected 'and', 'or' or the end of the condition")
        return node

    def logic(self, op: str) -> Node:
        lower = self.logic_and if op == "or" else self.negation
        first = lower()
        operands = [first]
        while self.at(op):
            self.advance()
            operands.append(lower())
        return first if len(operands) == 1 else Logic(first.pos, op, tuple(operands))

    def logic_and(self) -> Node:
        return self.logic("and")

    def negation(self) -> Node:
        if self.at("not"):
            pos = self.advance().pos
            self.nest()
            return Not(pos, self.negation())
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum()
        token = self.token
        if token.kind == "op" and token.text in COMPARISONS:
            self.advance()
            return Compare(token.pos, token.text, left, self.sum())
        if self.at("in"):
            self.advance()
            return Member(token.pos, left, self.list_ref(), negated=False)
        if self.at("not") and self.tokens[self.index + 1].text == "in":
            self.index += 2
            return Member(token.pos, left, self.list_ref(), negated=True)
        if self.at("matches"):
            self.advance()
            pattern = self.advance()
            if pattern.kind != "string":
                raise _error(self.text, pattern.pos, "matches needs a quoted pattern")
            return Matches(token.pos, left, _unquote(pattern.text))
        return left

    def list_ref(self) -> tuple[Literal, ...] | Name:
        if self.token.kind == "name" and self.token.text not in KEYWORDS:
            token = self.advance()
            return Name(token.pos, token.text)
        self.expect("[")
        items: list[Literal] = []
        while not self.at("]"):
            atom = self.atom()
            if not isinstance(atom, Literal | Name):
                raise _error(self.text, atom.pos, "a list holds constants only")
            items.append(atom if isinstance(atom, Literal) else _bare(atom))
            if not self.at("]"):
                self.expect(",")
        self.advance()
        return tuple(items)

    def sum(self) -> Node:
        node = self.product()
        while self.at("+", "-"):
            token = self.advance()
            node = Arithmetic(token.pos, token.text, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.at("*", "/"):
            token = self.advance()
            node = Arithmetic(token.pos, token.text, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.at("-"):
            pos = self.advance().pos
            self.nest()
            return Negative(pos, self.unary())
        return self.atom()

    def atom(self) -> Node:
        token = self.token
        if token.kind == "number":
            self.advance()
            return Literal(token.pos, Decimal(token.text))
        if token.kind == "string":
            self.advance()
            return Literal(token.pos, _unquote(token.text))
        if self.at("("):
            self.advance()
            self.nest()
            node = self.logic("or")
            self.expect(")")
            return node
        if token.kind == "name" and token.text in ("true", "false"):
            self.advance()
            return Literal(token.pos, token.text == "true")
        if token.kind == "name" and token.text not in KEYWORDS:
            self.advance()
            if self.at("("):
                return self.call(token)
            return Name(token.pos, token.text)
        raise self.fail("expected a value, a fact name or '('")

    def call(self, function: Token) -> Node:
        self.expect("(")
        if function.text in ("exists", "missing"):
            argument = self.advance()
            if argument.kind != "name" or argument.text in KEYWORDS:
                raise _error(self.text, argument.pos, f"{function.text}() needs a fact")
            self.expect(")")
            name = Name(argument.pos, argument.text)
            return Presence(function.pos, name, present=function.text == "exists")
        if function.text == "count":
            return self.count(function)
        raise _error(
            self.text,
            function.pos,
            f"unknown function '{function.text}' (use count, exists or missing)",
        )

    def count(self, function: Token) -> Node:
        activity = self.advance()
        if activity.kind != "name" or activity.text in KEYWORDS:
            raise _error(
                self.text, activity.pos, "count() needs an activity type or any"
            )
        window = None
        if self.at(","):
            self.advance()
            self.expect("within")
            if self.at(":"):  # `within: 7d` reads naturally inside a quoted condition
                self.advance()
            window = self.window()
        self.expect(")")
        return Count(function.pos, activity.text, window)

    def window(self) -> Window:
        start = self.duration()
        if not self.at(".."):
            return Window(timedelta(0), start[0], start[1])
        self.advance()
        end = self.duration()
        if end[0] <= start[0]:
            raise self.fail("a window must run from the nearer age to the older one")
        return Window(start[0], end[0], f"{start[1]}..{end[1]}")

    def duration(self) -> tuple[timedelta, str]:
        token = self.token
        if token.kind != "duration":
            raise self.fail("expected a duration such as 7d, 12h or 2w")
        self.advance()
        amount, unit = int(token.text[:-1]), token.text[-1]
        return amount * UNITS[unit], token.text


def _bare(name: Name) -> Literal:
    return Literal(name.pos, name.name)


def _unquote(text: str) -> str:
    quote = text[0]
    return text[1:-1].replace("\\" + quote, quote)
