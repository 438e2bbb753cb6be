"""The fact schema: what a ruleset lets callers send, and how each value is cleaned."""

from __future__ import annotations

import enum
import functools
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import pycountry

from leadgate.errors import LeadInputError

Value = str | int | float | bool
MAX_TEXT = 4096
MAX_MAGNITUDE = 10**15
# ASCII digits only: "²" and "①" count as digits to str.isdigit but not to int().
NUMERIC = re.compile(r"[+-]?([0-9]{1,16}(\.[0-9]{0,16})?|\.[0-9]{1,16})")
WHOLE = re.compile(r"[0-9]{1,16}")
RANGE = re.compile(r"([0-9]{1,16})\s*(?:-|–|to)\s*([0-9]{1,16})")
NAMED = 10  # unknown names listed one by one in warnings; the rest are counted
HIDDEN = frozenset({"Cc", "Cf", "Co", "Cs", "Zl", "Zp"})
TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "0"})


class FactType(enum.Enum):
    """The declared type of an attribute."""

    TEXT = "text"
    KEYWORD = "keyword"
    EMAIL = "email"
    COUNTRY = "country"
    NUMBER = "number"
    COUNT = "count"
    BOOLEAN = "boolean"

    @property
    def kind(self) -> Kind:
        """The kind of value rules see for this type."""
        if self in (FactType.NUMBER, FactType.COUNT):
            return Kind.NUMBER
        if self is FactType.BOOLEAN:
            return Kind.BOOLEAN
        return Kind.STRING


class Kind(enum.Enum):
    """What a value is to a rule: comparisons need both sides of one kind."""

    STRING = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"


class RangeBound(enum.Enum):
    """Which number a count range label such as "51-200" stands for."""

    LOWER = "lower"
    UPPER = "upper"
    MID = "mid"


@dataclass(frozen=True)
class FactSpec:
    """One declared attribute: its name, type and cleaning options."""

    name: str
    type: FactType
    fold: bool = False
    ranges: RangeBound = RangeBound.LOWER

    @property
    def folds_case(self) -> bool:
        """Whether values (and constants compared with them) are case-folded."""
        return self.fold or self.type in (FactType.KEYWORD, FactType.EMAIL)

    def clean(self, value: object, field: str) -> Value | None:
        """Return the cleaned value, None when missing; raise naming the field."""
        if value is None:
            return None
        cleaner = _CLEANERS[self.type]
        cleaned = cleaner(value, field, self)
        if isinstance(cleaned, str) and self.folds_case:
            cleaned = cleaned.casefold()
        return cleaned

    def constant(self, value: Value, field: str) -> Value:
        """Clean a constant from a rules file the same way a lead's value is cleaned."""
        cleaned = self.clean(value, field)
        if cleaned is None:
            raise LeadInputError(field, "an empty constant never matches")
        return cleaned


@dataclass(frozen=True)
class Schema:
    """The declared attributes and activity types of a ruleset."""

    facts: Mapping[str, FactSpec]
    activities: frozenset[str]

    @functools.cached_property
    def readable(self) -> Mapping[str, FactSpec]:
        """Every attribute a rule may read, with the `<email>_domain` ones added."""
        names = dict(self.facts)
        for spec in self.facts.values():
            if spec.type is FactType.EMAIL:
                domain = f"{spec.name}_domain"
                names[domain] = FactSpec(domain, FactType.KEYWORD)
        return names

    def source_of(self, name: str) -> str:
        """The attribute a caller sends for a readable name: email for email_domain."""
        if name not in self.facts and name.endswith("_domain"):
            return name.removesuffix("_domain")
        return name

    def clean(
        self, attributes: Mapping[str, object]
    ) -> tuple[dict[str, Value], list[str]]:
        """Clean a lead's attributes; return values and warnings for unknown keys."""
        values: dict[str, Value] = {}
        unknown = sorted(k for k in attributes if k not in self.facts)
        for name, spec in self.facts.items():
            value = spec.clean(attributes.get(name), f"attributes.{name}")
            if value is None:
                continue
            values[name] = value
            if spec.type is FactType.EMAIL:
                values[f"{name}_domain"] = str(value).rsplit("@", 1)[1]
        warnings = [f"unknown attribute '{_short(k)}' ignored" for k in unknown[:NAMED]]
        if len(unknown) > NAMED:
            warnings.append(f"{len(unknown) - NAMED} more unknown attributes ignored")
        return values, warnings


def _short(name: str) -> str:
    return name if len(name) <= 64 else name[:61] + "..."


def _string(value: object, field: str) -> str | None:
    if not isinstance(value, str):
        raise LeadInputError(field, f"expected text, got {_type_name(value)}")
    text = unicodedata.normalize("NFC", value).strip()
    if len(text) > MAX_TEXT:
        raise LeadInputError(field, f"text longer than {MAX_TEXT} characters")
    return text or None


def _text(value: object, field: str, spec: FactSpec) -> str | None:
    return _string(value, field)


def _email(value: object, field: str, spec: FactSpec) -> str | None:
    """An address with its domain in the one form lists compare against.

    The domain is NFKC-normalised (full-width letters become ASCII) and loses a
    trailing dot; invisible and control characters are refused, so that neither can
    slip a personal mailbox past a list of domains.
    """
    text = _string(value, field)
    if text is None:
        return None
    if any(c.isspace() or unicodedata.category(c) in HIDDEN for c in text):
        raise LeadInputError(
            field, "an e-mail address cannot hold spaces or invisible characters"
        )
    local, at, domain = text.lower().rpartition("@")
    domain = unicodedata.normalize("NFKC", domain).casefold().removesuffix(".")
    if not at or not local or "@" in local or "." not in domain.strip("."):
        raise LeadInputError(field, "not an e-mail address (need name@domain.tld)")
    return f"{local}@{domain}"


def _country(value: object, field: str, spec: FactSpec) -> str | None:
    text = _string(value, field)
    if text is None:
        return None
    code = _country_code(text.casefold())
    if code is None:
        raise LeadInputError(field, "not an ISO 3166 country code or English name")
    return code


@functools.lru_cache(maxsize=4096)
def _country_code(text: str) -> str | None:
    try:
        country = pycountry.countries.lookup(text)
    except LookupError:
        return None
    return str(country.alpha_2)


def _number(value: object, field: str, spec: FactSpec) -> int | float | None:
    if isinstance(value, bool):
        raise LeadInputError(field, "expected a number, got a boolean")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if not NUMERIC.fullmatch(text):
            raise LeadInputError(
                field, 'expected a number, or digits with an optional point ("12.5")'
            )
        return _bounded(Decimal(text), field)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise LeadInputError(field, "expected a finite number")
        return _bounded(Decimal(repr(value)), field)
    raise LeadInputError(field, f"expected a number, got {_type_name(value)}")


def _bounded(number: Decimal, field: str) -> int | float:
    if abs(number) > MAX_MAGNITUDE:
        raise LeadInputError(field, f"magnitude over {MAX_MAGNITUDE:.0e}")
    if number == number.to_integral_value():
        return int(number)
    return float(number)


def _count(value: object, field: str, spec: FactSpec) -> int | None:
    if isinstance(value, str):
        return _count_label(value, field, spec.ranges)
    number = _number(value, field, spec)
    if number is None:
        return None
    if not isinstance(number, int) or number < 0:
        raise LeadInputError(field, "expected a whole number of at least 0")
    return number


def _count_label(label: str, field: str, bound: RangeBound) -> int | None:
    text = re.sub(r"(?<=\d)[,_ ](?=\d{3})", "", label.strip())
    if not text:
        return None
    if WHOLE.fullmatch(text):
        return _bounded_count(int(text), field)
    if text.endswith("+") and WHOLE.fullmatch(text[:-1].strip()):
        return _bounded_count(int(text[:-1]), field)
    match = RANGE.fullmatch(text)
    if not match:
        raise LeadInputError(
            field, 'expected a whole number or a range such as "51-200" or "10000+"'
        )
    low, high = int(match[1]), int(match[2])
    if low > high:
        raise LeadInputError(field, "a range must run from low to high")
    picked = {RangeBound.LOWER: low, RangeBound.UPPER: high}.get(bound)
    return _bounded_count((low + high) // 2 if picked is None else picked, field)


def _bounded_count(number: int, field: str) -> int:
    if number > MAX_MAGNITUDE:
        raise LeadInputError(field, f"magnitude over {MAX_MAGNITUDE:.0e}")
    return number


def _boolean(value: object, field: str, spec: FactSpec) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().casefold()
        if not word:
            return None
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
    raise LeadInputError(field, "expected true/false or yes/no")


def _type_name(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "a boolean"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


_CLEANERS = {
    FactType.TEXT: _text,
    FactType.KEYWORD: _text,
    FactType.EMAIL: _email,
    FactType.COUNTRY: _country,
    FactType.NUMBER: _number,
    FactType.COUNT: _count,
    FactType.BOOLEAN: _boolean,
}
