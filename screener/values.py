"""Turn what a file or a person gave into a typed fact value, or say precisely why not.

A value outside its type is an error naming the fact and the value; it is never read as
unknown and never clipped into range. Empty text and null mean unknown (None).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, Inexact, InvalidOperation, localcontext
from fractions import Fraction
from typing import Any, Callable, Mapping, NamedTuple

from screener.errors import InvalidValue
from screener.intervals import censored, interval_json, partial_date
from screener.memo import PerObject
from screener.model import FactSpec, FactValue, Interval, Special
from screener.present import plain as _plain, shortened as shortened
from screener.present import show as show  # screener.values.show stays the public name

YES = frozenset({"yes", "y", "true", "1"})
NO = frozenset({"no", "n", "false", "0"})
# Numbers and dates are written with the digits 0-9 only (re.ASCII: \d is [0-9]).
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z", re.ASCII)
_INTEGER = re.compile(r"[-+]?\d+\Z", re.ASCII)
_QUANTITY = re.compile(r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*)\Z", re.S | re.ASCII)
_DECIMAL = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\Z", re.ASCII)
_NUMERIC_KINDS = frozenset({"integer", "decimal", "quantity", "date"})
FOREIGN_DIGITS = "written with digits other than 0-9 (Arabic-Indic, full-width...); write it with 0-9"
FLOAT_DIGITS = 15  # significant digits of a decimal that a float holds exactly
MAX_DIGITS = 30  # a number of more digits than this is not a measurement
MAX_ITEMS = 1000  # items of one list fact
MAX_LIST_TEXT = 1_000_000  # characters of a list given as JSON text


@dataclass(frozen=True, slots=True)
class Converted:
    """A quantity given in another unit than the fact keeps: what was
    given and what it became, for the trace ("1.5 mg/dL = 132.6 umol/L")."""

    given: Decimal
    unit: str
    value: Decimal
    declared: str

    def __str__(self) -> str:
        return f"{_plain(self.given)} {self.unit} = {_plain(self.value)} {self.declared}"

    def to_json(self) -> dict[str, str]:
        return {"value": _plain(self.given), "unit": self.unit}

    @property
    def given_text(self) -> str:
        """The value as given, with its unit: `1.5 mg/dL`."""
        return f"{_plain(self.given)} {self.unit}"

# Longer numbers are refused before conversion: Python will not turn an integer of more than
# 4,300 digits into text (so not into an error message either), and none is a clinical value.
MAX_NUMBER_CHARS = 100
_SHORT_KINDS = frozenset({"boolean", "integer", "decimal", "date", "enum"})


def coerce(spec: FactSpec, raw: Any) -> FactValue | None:
    """Return the typed value of `raw` for `spec`, None when unknown; raises InvalidValue."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.strip()
        if raw == "":
            return None
    kind = spec.type
    if kind in _SHORT_KINDS:
        _refuse_oversized(spec, raw)
    if kind in _NUMERIC_KINDS and isinstance(raw, str):
        _ascii_digits(spec, raw)
    if isinstance(raw, Interval) and kind in ("quantity", "date"):
        return raw
    if kind == "quantity":
        return censored(spec, raw) or quantity(spec, raw)[0]
    if kind == "list":
        return _list(spec, raw)
    if kind == "boolean":
        return _boolean(spec, raw)
    if kind == "integer":
        return _ranged(spec, raw, _integer(spec, raw))
    if kind == "decimal":
        return _ranged(spec, raw, _decimal(spec, raw))
    if kind == "date":
        return _date(spec, raw)
    if kind == "enum":
        if isinstance(raw, str) and raw in spec.values:
            return raw
        raise InvalidValue(spec.name, raw, f"expected one of {', '.join(spec.values)}")
    if isinstance(raw, str):
        return raw
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return str(raw)
    raise InvalidValue(spec.name, raw, "expected text")


# Typed values of texts already read, per fact: a batch's cells repeat a few texts (yes/no,
# enum values, small counts, common lab values) over and over, and reading a text is pure.
# Each way of reading keeps at most MEMO_TEXTS of them, the first seen, each at most
# MEMO_LENGTH characters long; errors are never kept. Facts of several trials declared alike
# (`reading`) share what was read: the same text is read once for all of them.
# Keyed by the spec's id, with the spec itself, so a freed spec's id cannot be mistaken.
MEMO_TEXTS = 1024
MEMO_LENGTH = 64
MEMO_FACTS = 2048
_UNREAD: Any = object()  # what a memo gives for a text it does not hold
# Units as written after a quantity's number, each with its conversion to the fact's unit
# (`_SAME`: the fact's unit; None: it does not convert), at most UNITS_KEPT per way of reading.
UNITS_KEPT = 64
_SAME: Any = object()


class _Reading:
    """What reading a fact's texts keeps: the texts read (`remembered_texts`) and the units
    met, shared by the facts read alike (`reading`, the key), and the fact's own range as the
    Decimals it is written as, found once rather than once per value."""

    __slots__ = ("spec", "key", "known", "units", "low", "high")

    def __init__(self, spec: FactSpec, key: str, known: dict[str, FactValue | None],
                 units: dict[str, Any]):
        self.spec = spec
        self.key = key
        self.known = known
        self.units = units
        self.low = _bound(spec.minimum)
        self.high = _bound(spec.maximum)

    def conversion(self, written: str) -> Any:
        """How a value given in the unit `written` becomes one in the fact's unit: `_SAME`,
        a `_Conversion`, or None when it does not convert."""
        found = self.units.get(written, _UNREAD)
        if found is _UNREAD:
            unit = ucum_code(written)
            found = _SAME if unit == self.spec.unit else _conversion(self.spec, unit)
            if len(self.units) >= UNITS_KEPT:
                self.units.clear()  # (units written every way: each is found again)
            self.units[written] = found
        return found


_memo: dict[int, _Reading] = {}
_readings: dict[str, tuple[dict[str, FactValue | None], dict[str, Any]]] = {}


def _entry(spec: FactSpec) -> _Reading:
    entry = _memo.get(id(spec))
    if entry is None or entry.spec is not spec:  # a new fact, or an old one's id reused
        if len(_memo) >= MEMO_FACTS:
            _memo.clear()  # facts of trials loaded long ago
            _readings.clear()
        key = repr(_as_read(spec))
        entry = _memo[id(spec)] = _Reading(spec, key, *_readings.setdefault(key, ({}, {})))
    return entry


def _as_read(spec: FactSpec) -> FactSpec:
    """The spec without what reading a value never looks at (its description and where the
    rules declare it), for its fields too."""
    return dataclasses.replace(spec, description="", span=None,  # type: ignore[arg-type]
                               item=tuple(_as_read(field) for field in spec.item))


def reading(spec: FactSpec) -> str:
    """A key equal for two facts whose values are read alike: the same name, type, unit,
    range, choices, conversions and fields, whatever trial declares them. A value read for
    one, or the error it raised, is the other's too (an error names the fact)."""
    return _entry(spec).key


def remembered_texts(spec: FactSpec) -> dict[str, FactValue | None]:
    """The texts `coerce_text` has read for `spec` (or for a fact read alike) with their
    values: a text found here reads as its value without a call. It only grows, and stays
    right for `spec` even after the memo forgets it."""
    return _entry(spec).known


def coerce_text(spec: FactSpec, text: str) -> FactValue | None:
    """`coerce(spec, text)` for a text, remembered for the next time the same text comes."""
    entry = _memo.get(id(spec))
    if entry is None or entry.spec is not spec:
        entry = _entry(spec)
    found = entry.known.get(text, _UNREAD)  # (not KeyError: most lab values and dates are misses)
    if found is not _UNREAD:
        return found
    return _read_text(entry, text)


def text_reader(spec: FactSpec) -> Callable[[str], FactValue | None]:
    """`coerce_text(spec, ...)` for the caller who has looked for the text among
    `remembered_texts(spec)` already and not found it: the same value or InvalidValue, the
    text remembered as `coerce_text` remembers it, without looking again."""
    return functools.partial(_read_text, _entry(spec))


def _read_text(entry: _Reading, text: str) -> FactValue | None:
    """`coerce(spec, text)` for a text not remembered yet, the usual ones read directly;
    remembered when short enough and while there is room."""
    spec = entry.spec
    kind = spec.type
    value: FactValue | None
    if kind == "quantity":
        value = _plain_quantity(entry, text)
        if value is None:
            value = coerce(spec, text)
    elif kind == "date" and _ISO_DATE.match(text):  # the usual date, read directly
        try:
            value = dt.date.fromisoformat(text)
        except ValueError:
            value = coerce(spec, text)  # raises the error naming the fact and the text
    else:
        value = coerce(spec, text)
    known = entry.known
    if len(known) < MEMO_TEXTS and len(text) <= MEMO_LENGTH and (kind != "list" or value == ()):
        known[text] = value  # (a list's items are mutable: never shared; no items are)
    return value


def _refuse_oversized(spec: FactSpec, raw: Any) -> None:
    """Raise InvalidValue, showing the value shortened, when it is too long for any number."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() > 3 * MAX_NUMBER_CHARS:
        raise InvalidValue(spec.name, shortened(f"{raw:x}"), f"a number far too large (at most "
                                                              f"{MAX_NUMBER_CHARS} characters); shown in hex")
    if isinstance(raw, str) and len(raw) > MAX_NUMBER_CHARS:
        raise InvalidValue(spec.name, shortened(raw), f"{len(raw)} characters is too long for a "
                                                      f"{spec.type} (at most {MAX_NUMBER_CHARS})")


def has_foreign_digits(text: str) -> bool:
    """True when `text` holds a decimal digit other than 0-9 (`٣`, `３`, `३`)."""
    return not text.isascii() and any(ch.isdecimal() and not ch.isascii() for ch in text)


def _ascii_digits(spec: FactSpec, raw: str) -> None:
    """Refuse a number or date written with other digits than 0-9: Python would read `٣` and
    `３` as 3, but a person checking the record, the trace or the letter reads what is written,
    and a value must be what it says to every reader. Raises InvalidValue."""
    if has_foreign_digits(raw):
        raise InvalidValue(spec.name, _short(raw), FOREIGN_DIGITS)


def _boolean(spec: FactSpec, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        word = raw.lower()
        if word in YES:
            return True
        if word in NO:
            return False
    raise InvalidValue(spec.name, raw, "expected yes or no")


def _integer(spec: FactSpec, raw: Any) -> int:
    if isinstance(raw, bool):
        raise InvalidValue(spec.name, raw, "expected a whole number")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and math.isfinite(raw) and raw == int(raw):
        return int(raw)
    if isinstance(raw, str) and _INTEGER.match(raw):
        return int(raw)
    if isinstance(raw, str) and _WHOLE_WITH_POINT.match(raw):
        return int(Decimal(decimal_point(spec, raw)))  # `57.0`, as exports write integers
    raise InvalidValue(spec.name, raw, "expected a whole number")


def _decimal(spec: FactSpec, raw: Any) -> float:
    if isinstance(raw, bool):
        raise InvalidValue(spec.name, raw, "expected a number")
    text = decimal_point(spec, str(raw).strip()) if isinstance(raw, (str, int, float)) else ""
    try:
        number = Decimal(text) if isinstance(raw, (str, int, float)) else None
    except InvalidOperation:
        number = None
    if isinstance(raw, str) and not _DECIMAL.match(text):
        number = None  # Decimal() also reads '1_000' and other digits than 0-9
    if number is None or not number.is_finite():
        raise InvalidValue(spec.name, raw, "expected a number")
    if len(number.normalize().as_tuple().digits) > FLOAT_DIGITS:
        # held as a float, which keeps 15 significant digits of a decimal exactly; more
        # would be rounded silently
        raise InvalidValue(spec.name, raw, f"cannot be held exactly (at most {FLOAT_DIGITS} "
                                           "significant digits)")
    return float(number)


def _ranged(spec: FactSpec, raw: Any, value: float) -> Any:
    if spec.minimum is not None and value < spec.minimum:
        raise InvalidValue(spec.name, raw, f"below the minimum {_fmt(spec.minimum)}{_unit(spec)}")
    if spec.maximum is not None and value > spec.maximum:
        raise InvalidValue(spec.name, raw, f"above the maximum {_fmt(spec.maximum)}{_unit(spec)}")
    return value


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _unit(spec: FactSpec) -> str:
    return f" {spec.unit}" if spec.unit else ""


def _date(spec: FactSpec, raw: Any) -> dt.date | Special:
    if isinstance(raw, str) and raw.lower() in _SPECIAL_WORDS:
        word = Special(raw.lower())
        if word in spec.special:
            return word
        raise InvalidValue(spec.name, raw, f"{word.value!r} is not a value of this date")
    if isinstance(raw, Special):
        return _date(spec, raw.value)
    if isinstance(raw, dt.datetime):
        raise InvalidValue(spec.name, raw, "expected a date (YYYY-MM-DD), not a time")
    if isinstance(raw, dt.date):
        return raw
    if isinstance(raw, str) and _ISO_DATE.match(raw):
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise InvalidValue(spec.name, raw, "no such date") from None
    month = partial_date(spec, raw)
    if month is not None:
        return month
    words = "".join(f" or {s.value}" for s in spec.special)
    raise InvalidValue(spec.name, raw, f"expected a date as YYYY-MM-DD, a month (YYYY-MM) or a "
                                       f"year{words}")


_SPECIAL_WORDS = frozenset(s.value for s in Special)


def _not_huge(spec: FactSpec, raw: Any) -> None:
    """Refuse numbers too long to be measurements before any conversion of them."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() > 100:
        raise InvalidValue(spec.name, _short(raw), f"a number of more than {MAX_DIGITS} digits")
    if isinstance(raw, str) and len(raw) > MAX_DIGITS + 10 and sum(c.isdigit() for c in raw) > MAX_DIGITS + 10:
        raise InvalidValue(spec.name, _short(raw), f"a number of more than {MAX_DIGITS} digits")


def _cut(number: Any) -> str:
    """A value a message names after converting it, cut when an absurd unit made it longer than
    any measurement is written (`8 10*70/L` is 62 digits of 10*9/L): the value given is quoted
    beside it."""
    return shortened(_plain(number))


def _short(raw: Any) -> str:
    """A long value cut for an error message (a 5,000-digit number is named, not copied)."""
    if isinstance(raw, int) and raw.bit_length() > 100:  # str() of it may itself fail
        return f"a number of about {int(raw.bit_length() * 0.30103) + 1} digits"
    text = raw if isinstance(raw, str) else str(raw)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


# --- how numbers and units are written -----------------------------------------------------

# `57.`, `57.0`, `57,0` (a decimal comma is followed by digits: `57,` is no number)
_WHOLE_WITH_POINT = re.compile(r"[-+]?\d+(?:\.0*|,0+)\Z", re.ASCII)
_COMMA = re.compile(r"([-+]?\d+),(\d+)(?![\d.,])", re.ASCII)
_FEET_INCHES = re.compile(r"(\d+)\s*(?:ft|feet|foot|')\s*(\d+(?:\.\d+)?)\s*(?:in|inch|inches|\"|'')?\Z",
                          re.ASCII)
_MICRO = str.maketrans({"µ": "u", "μ": "u"})
# Spellings lab exports use for UCUM units. Counts per volume name the thing counted, which
# UCUM writes as an annotation or leaves out: both read as the plain count.
_SPELLINGS = {
    "lb": "[lb_av]", "lbs": "[lb_av]", "kgs": "kg", "in": "[in_i]", "inch": "[in_i]",
    "inches": "[in_i]", "ft": "[ft_i]", "mmHg": "mm[Hg]", "mmhg": "mm[Hg]", "bpm": "/min",
    "IU/mL": "[IU]/mL", "IU/ml": "[IU]/mL", "IU/L": "[IU]/L", "x10^9/L": "10*9/L",
    "×10^9/L": "10*9/L", "10^9/L": "10*9/L", "x10^12/L": "10*12/L", "10^12/L": "10*12/L",
}
_COUNTED = re.compile(r"\A(?:\{cells\}|cells|\{cell\}|cell)\s*/\s*")


def ucum_code(unit: str) -> str:
    """The UCUM code of a unit as lab exports write it: `cells/mm3` and `{cells}/uL` are
    `/mm3` and `/uL`, `lb` is `[lb_av]`, `mmHg` is `mm[Hg]`; any other text as it is."""
    unit = unit.strip()
    unit = _COUNTED.sub("/", unit)
    return _SPELLINGS.get(unit, unit)


def decimal_point(spec: FactSpec, text: str) -> str:
    """`8,1` as `8.1` (a decimal comma). A comma before exactly three digits reads two ways
    (`99,999` is ninety-nine thousand nine hundred and ninety-nine, or 99.999): refused."""
    match = _COMMA.match(text)
    if match is None:
        return text
    if len(match.group(2)) == 3:
        raise InvalidValue(spec.name, _short(text), "a comma before three digits reads two ways "
                           f"(thousands or decimals): write {match.group(1)}{match.group(2)} "
                           f"or {match.group(1)}.{match.group(2)}")
    return f"{match.group(1)}.{match.group(2)}{text[match.end():]}"


# --- quantities ---------------------------------------------------------------------------


def quantity(spec: FactSpec, raw: Any) -> tuple[Decimal | None, Converted | None]:
    """A quantity's value in the declared unit, and what was given when it differs.

    `raw` is a number (in the declared unit), text with an optional UCUM unit ("1.2 mg/dL",
    "1.2mg/dL") or a mapping {value, unit}. Converted by the unit system or the fact's
    declared factors exactly (never rounded), then checked against min/max. A conversion
    whose result cannot be held exactly is an error naming the fact, value and unit."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, None
    number, unit = _number_and_unit(spec, raw)
    value = number
    if unit and unit != spec.unit:
        conversion = _conversion(spec, unit)
        if conversion is None:
            raise InvalidValue(spec.name, _short(raw), f"the unit {unit} does not convert to {spec.unit}")
        value = _converted(spec, raw, number, conversion)
    # The value is kept exactly as given (after an exact conversion): `places` shapes how it is
    # shown, never what it is compared with, so 74.95 stays below a limit of 75.
    low, high = _bound(spec.minimum), _bound(spec.maximum)
    if low is not None and value < low:
        raise InvalidValue(spec.name, _short(raw), f"{_cut(value)} {spec.unit} is below the "
                           f"minimum {_plain(low)} {spec.unit}")
    if high is not None and value > high:
        raise InvalidValue(spec.name, _short(raw), f"{_cut(value)} {spec.unit} is above the "
                           f"maximum {_plain(high)} {spec.unit}")
    if (unit or spec.unit) != spec.unit or value != number:
        return value, Converted(number, unit or spec.unit, value, spec.unit)
    return value, None


# A quantity as lab exports mostly write it (`107.27 kg`, `2,35 mmol/L`, `139.4`): at most 10
# digits before the decimal point or comma and 20 after it (30 in all: never too many for
# `_number`), then optionally a unit of visible ASCII characters, after one space or straight
# after the number when it cannot continue it (no digit, point, exponent, sign or comma).
_PLAIN_QUANTITY = re.compile(r"(\d{1,10}(?:[.,]\d{1,20})?)(?:(?: |(?![\d.eE+\-,]))([!-~]+))?\Z", re.ASCII)


def _plain_quantity(entry: _Reading, text: str) -> Decimal | None:
    """`coerce(entry.spec, text)` for a quantity written plainly and within the fact's range,
    read the way `quantity` reads it without its detours; None for any other text (a sign,
    an exponent, a decimal comma, a censored value, feet and inches, an error to raise),
    which `coerce` reads the full way. Most of a batch's lab values differ from row to row,
    so they are read, not remembered."""
    match = _PLAIN_QUANTITY.match(text)
    if match is None or len(text) > MAX_DIGITS + 10:  # (`_not_huge` counts the unit's digits too)
        return None
    number_text, written = match.groups()
    if "," in number_text:  # a decimal comma, as `decimal_point` reads it
        whole, _, decimals = number_text.partition(",")
        if len(decimals) == 3:
            return None  # it reads two ways: refused
        number_text = f"{whole}.{decimals}"
    value = number = Decimal(number_text)
    if written:
        if ("'" in text or "f" in text) and _FEET_INCHES.match(text):
            return None
        conversion = entry.conversion(written)
        if conversion is None:
            return None
        if conversion is not _SAME:
            try:
                value = _converted(entry.spec, text, number, conversion)
            except InvalidValue:
                return None
    low, high = entry.low, entry.high
    if (low is not None and value < low) or (high is not None and value > high):
        return None
    return value


class _Conversion(NamedTuple):
    """declared = given × factor + offset, exactly; with their decimal forms when they end,
    found once per conversion rather than once per value."""

    factor: Fraction
    offset: Fraction
    decimal_factor: Decimal | None
    decimal_offset: Decimal | None


# The conversions found from a unit as given to a fact's unit (None: there is none), by the
# fact's way of reading (`reading`) and the unit: a batch gives a few units over and over.
_CONVERSIONS: dict[tuple[str, str], _Conversion | None] = {}
_CONVERSIONS_KEPT = 4096


def _conversion(spec: FactSpec, unit: str) -> _Conversion | None:
    """The conversion from `unit` to the fact's unit; None when it does not convert."""
    key = (reading(spec), unit)
    try:
        return _CONVERSIONS[key]
    except KeyError:
        pass
    from screener.rules import units

    try:
        factor, offset = units.exact_conversion(unit, spec.unit, _factors(spec), _offsets(spec))
        found: _Conversion | None = _Conversion(factor, offset, _terminating(factor), _terminating(offset))
    except units.UnitError:
        found = None
    if len(_CONVERSIONS) >= _CONVERSIONS_KEPT:
        _CONVERSIONS.clear()
    _CONVERSIONS[key] = found
    return found


@functools.lru_cache(maxsize=256, typed=True)
def _bound(limit: float | None) -> Decimal | None:
    """A fact's minimum or maximum as the Decimal it is written as (18 as 18, 18.0 as 18.0)."""
    return None if limit is None else Decimal(str(limit))


@functools.lru_cache(maxsize=1024)
def _terminating(value: Fraction) -> Decimal | None:
    """A fraction as a Decimal when its decimal form ends (1/25 is 0.04; 1/3 has none)."""
    with localcontext() as context:
        context.prec = 80
        context.traps[Inexact] = True
        try:
            return Decimal(value.numerator) / Decimal(value.denominator)
        except (Inexact, InvalidOperation):
            return None


def _converted(spec: FactSpec, raw: Any, number: Decimal, conversion: _Conversion) -> Decimal:
    """`number × factor + offset` exactly: in decimals when the factor and offset have an
    ending decimal form (most do: 0.001, 17.1, 0.45359237), else as fractions."""
    factor, offset, decimal_factor, decimal_offset = conversion
    if decimal_factor is not None and decimal_offset is not None:
        with localcontext() as context:
            context.prec = 80
            context.traps[Inexact] = True  # never rounded: past 80 digits, by fractions
            try:
                return without_trailing_zeros(number * decimal_factor + decimal_offset)
            except (Inexact, InvalidOperation):
                pass
    return _exactly(spec, raw, Fraction(number) * factor + offset)


def _exactly(spec: FactSpec, raw: Any, value: Fraction) -> Decimal:
    """A converted value as a Decimal when it has a finite decimal form; else an error naming
    the fact, the value and the unit (16 kPa is 120.0098521... mm[Hg], without end)."""
    with localcontext() as context:
        context.prec = 80
        context.traps[Inexact] = True
        try:
            return without_trailing_zeros(Decimal(value.numerator) / Decimal(value.denominator))
        except (Inexact, InvalidOperation):
            context.traps[Inexact] = False
            context.prec = 12
            near = Decimal(value.numerator) / Decimal(value.denominator)
    shown = _cut(near.normalize())
    raise InvalidValue(spec.name, _short(raw), f"is {shown if shown.endswith('…') else shown + '...'} "
                       f"{spec.unit}, a number without end that cannot be held exactly; give it in {spec.unit}")


def without_trailing_zeros(value: Decimal) -> Decimal:
    """`132.60` as `132.6`, `180.000` as `180` (the same number, written as a person would)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def check_plausible(spec: FactSpec, raw: Any, value: Any) -> None:
    """Refuse a bare number (no unit given) that is unusual in the fact's unit but usual in
    another unit the rules name (`plausible: units`): albumin `3.8` where g/L is declared is
    most likely 3.8 g/dL, and is never used silently as 3.8 g/L. Raises InvalidValue naming
    the fact, the value and the likely unit; any other value passes."""
    usual = spec.plausible
    if usual is None or not isinstance(value, Decimal) or usual.holds(value):
        return
    if isinstance(raw, Mapping) or (isinstance(raw, str) and _number_and_unit(spec, raw)[1]):
        return  # the unit was given: the value is what the record says
    for code in usual.units:
        try:
            meant = quantity(spec, {"value": _plain(value), "unit": code})[0]
        except InvalidValue:
            continue
        if meant is not None and usual.holds(meant):
            raise InvalidValue(spec.name, _short(raw), f"{_cut(value)} {spec.unit} is not a "
                               f"usual value; did you mean {_cut(value)} {code} = "
                               f"{_cut(meant)} {spec.unit}? Give the value with its unit")


def describe_conversion(spec: FactSpec, raw: Any) -> Converted | None:
    """What a quantity value was given as, when it was converted or rounded; else None."""
    if spec.type != "quantity":
        return None
    try:
        return quantity(spec, raw)[1]
    except InvalidValue:
        return None


def _factors(spec: FactSpec) -> dict[str, Decimal]:
    return {**dict(spec.convert), **{unit: scale for unit, scale, _ in spec.affine}}


def _offsets(spec: FactSpec) -> dict[str, Decimal]:
    return {unit: offset for unit, _, offset in spec.affine}


def _number_and_unit(spec: FactSpec, raw: Any) -> tuple[Decimal, str]:
    if isinstance(raw, str):
        return _text_number_and_unit(spec, raw)
    if isinstance(raw, Mapping):
        if set(raw) - {"value", "unit"} or "value" not in raw:
            raise InvalidValue(spec.name, _short(json.dumps(_jsonable(raw))),
                               "expected {value: number, unit: UCUM code}")
        unit = raw.get("unit")
        if unit is not None and not isinstance(unit, str):
            raise InvalidValue(spec.name, _short(str(unit)), "the unit must be text")
        inner = raw["value"]
        if isinstance(inner, str):
            _ascii_digits(spec, inner)
            number, written = _number_and_unit(spec, inner)
            if written and unit:
                raise InvalidValue(spec.name, _short(inner), "give the unit once")
            return number, written or ucum_code((unit or "").strip())
        return _number(spec, inner), ucum_code((unit or "").strip())
    return _number(spec, raw), ""


def _text_number_and_unit(spec: FactSpec, raw: str) -> tuple[Decimal, str]:
    """A number and its unit as a text writes them (`1.2 mg/dL`, `1.2mg/dL`, `5 ft 4 in`)."""
    text = raw.strip() if raw.isascii() else \
        unicodedata.normalize("NFKC", raw).strip().translate(_MICRO)
    _not_huge(spec, text)
    if ("'" in text or "f" in text) and (feet := _FEET_INCHES.match(text)):  # `5 ft 4 in`
        inches = Decimal(feet.group(1)) * 12 + Decimal(feet.group(2))
        return _number(spec, inches), "[in_i]"
    match = _QUANTITY.match(decimal_point(spec, text))
    if not match:
        raise InvalidValue(spec.name, _short(raw), f"expected a number in {spec.unit}, "
                           "optionally followed by its unit")
    return _number(spec, match.group(1)), ucum_code(match.group(2).strip()) if match.group(2) else ""


def _number(spec: FactSpec, raw: Any) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str, Decimal)):
        raise InvalidValue(spec.name, _short(str(raw)), f"expected a number in {spec.unit}")
    _not_huge(spec, raw)
    try:
        number = Decimal(raw) if isinstance(raw, Decimal) else Decimal(str(raw).strip())
    except InvalidOperation:
        raise InvalidValue(spec.name, _short(raw), f"expected a number in {spec.unit}") from None
    if not number.is_finite():
        raise InvalidValue(spec.name, _short(raw), f"expected a number in {spec.unit}")
    if len(number.as_tuple().digits) > MAX_DIGITS or number.adjusted() > MAX_DIGITS \
            or number.adjusted() < -MAX_DIGITS:
        raise InvalidValue(spec.name, _short(raw), f"a number of more than {MAX_DIGITS} digits")
    return number


# --- lists --------------------------------------------------------------------------------


def _list(spec: FactSpec, raw: Any) -> tuple[dict[str, Any], ...]:
    if isinstance(raw, str):
        raw = _json_list(spec, raw)
    if not isinstance(raw, (list, tuple)):
        raise InvalidValue(spec.name, _short(str(raw)), "expected a list of items (JSON list)")
    if len(raw) > MAX_ITEMS:
        raise InvalidValue(spec.name, f"a list of {len(raw)} items", f"at most {MAX_ITEMS} items")
    fields, readers = _item_fields(spec)
    items = []
    for number, item in enumerate(raw, 1):
        if not isinstance(item, dict) and not isinstance(item, Mapping):  # (dict: told quickly)
            raise InvalidValue(spec.name, _short(str(item)),
                               f"item {number} must be a mapping of {', '.join(fields)}")
        if not item.keys() <= fields.keys():
            unknown = [str(k) for k in item if k not in fields]
            raise InvalidValue(spec.name, _short(unknown[0]), f"item {number}: not a field of "
                               f"its items ({', '.join(fields)})")
        typed: dict[str, Any] = {}
        for name, field, read_before, entry in readers:
            given = item.get(name)
            if given is None:
                typed[name] = None
                continue
            try:
                # a text (every field of a JSON list in a cell) is read as a cell is
                # (`coerce_text`), and remembered
                if isinstance(given, str):
                    value = read_before.get(given, _UNREAD)
                    typed[name] = _read_text(entry, given) if value is _UNREAD else value
                else:
                    typed[name] = coerce(field, given)
            except InvalidValue as exc:
                raise InvalidValue(spec.name, exc.value,
                                   f"item {number}, {name}: {exc.reason}") from None
        items.append(typed)
    return tuple(items)


# A list fact's item fields by name, and each with the texts already read for it and its way
# of reading (`_Reading`): found once per list fact, not once per list read.
_item_fields: PerObject[FactSpec, tuple[dict[str, FactSpec], tuple[tuple[
    str, FactSpec, dict[str, FactValue | None], _Reading], ...]]] = PerObject(
    lambda spec: ({field.name: field for field in spec.item},
                  tuple((field.name, field, (entry := _entry(field)).known, entry) for field in spec.item)),
    MEMO_FACTS)


def _json_list(spec: FactSpec, text: str) -> Any:
    if len(text) > MAX_LIST_TEXT:
        raise InvalidValue(spec.name, _short(text), f"longer than {MAX_LIST_TEXT} characters")
    if not text.startswith("["):
        raise InvalidValue(spec.name, _short(text), "expected a JSON list of items, [] for none")
    try:
        # the decoder's scanner itself (`decode` is it, with a few Python steps around it); it
        # tells a text without a value after the `[` by StopIteration
        found, end = _LIST_DECODER.scan_once(text, 0)
    except _GivenTwice as twice:
        raise InvalidValue(spec.name, _short(text), f"the field {twice.key!r} is given twice "
                           "in one item") from None
    except (ValueError, RecursionError, StopIteration):
        found, end = None, -1
    if end != len(text) and (end < 0 or text[end:].strip(_JSON_SPACE)):
        raise InvalidValue(spec.name, _short(text), "not a JSON list of items")
    return found


class _GivenTwice(Exception):
    """A key given twice in one JSON object of a list (json keeps the last silently)."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The object of `pairs`; raises _GivenTwice naming the first key given again."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _GivenTwice(key)
            seen.add(key)
    return found


# Numbers stay text, read by each field's own type; one decoder serves every list.
_LIST_DECODER = json.JSONDecoder(object_pairs_hook=_unique, parse_float=str, parse_int=str)
_JSON_SPACE = " \t\n\r"  # what JSON allows after a value


def _jsonable(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in raw.items()}


def to_json(value: Any) -> Any:
    """A JSON-safe form of a fact value that `coerce` reads back to the same value: dates as
    ISO text, quantities as their exact decimal text ("132.6"), never/ongoing as the word,
    lists as lists of objects."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Interval):
        return interval_json(value)
    if isinstance(value, Special):
        return value.value
    if isinstance(value, Decimal):
        return _plain(value)
    if isinstance(value, (tuple, list)):
        return [{str(k): to_json(v) for k, v in item.items()} if isinstance(item, Mapping)
                else to_json(item) for item in value]
    return value


def context_facts(facts: Mapping[str, FactSpec], pairs: list[str] | None) -> dict[str, FactValue]:
    """The run's context facts from `NAME=VALUE` texts (`--context cohort=B`).

    Raises ValueError, whose message is for the person who typed the option, for a text that
    is not NAME=VALUE, a name that is not a context fact of the trial, a name given twice
    or a value the fact does not take."""
    out: dict[str, FactValue] = {}
    for pair in pairs or []:
        name, equals, text = pair.partition("=")
        name = name.strip()
        if not equals or not name:
            raise ValueError(f"--context takes NAME=VALUE, not {shortened(pair)!r}")
        spec = facts.get(name)
        if spec is None or not spec.context:
            known = sorted(n for n, s in facts.items() if s.context)
            listed = ", ".join(known) if known else "none in this trial"
            raise ValueError(f"--context {shortened(name)!r} is not a context fact "
                             f"(context facts: {listed})")
        if name in out:
            raise ValueError(f"--context {name} is given twice")
        try:
            value = coerce(spec, text)
        except InvalidValue as exc:
            raise ValueError(f"--context {name}: {shortened(text)!r}: {exc.reason}") from None
        if value is None:
            raise ValueError(f"--context {name} needs a value")
        out[name] = value
    return out
