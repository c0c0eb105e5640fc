"""Read the values a record gives as a range rather than one number or day: censored
laboratory results (`<20`, `≥ 2000 IU/mL`, "below the detection limit", `未检出`) and dates
known to the month or the year (`March 2021`, `2021-03`, `03/2021`, `2021年3月`, `2021`).

Each becomes an `Interval` (screener.model) whose ends are exact: nothing is rounded, and an
interval is never replaced by one of its points. How the engine decides with one is in
docs/rules-language.md ("Values known as a range").
"""
from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import functools
import re
import unicodedata
from decimal import Decimal
from typing import Any, Mapping

from screener.errors import InvalidValue
from screener.model import FactSpec, Interval

# `<20`, `<= 0.5 mg/dL`, `≥2000 IU/mL`, `=<20` (as some exports write it)
_CENSORED = re.compile(r"(<=|>=|=<|=>|<|>|≤|≥)\s*(\S.*)\Z", re.S)
_OPS = {"<": "<", "<=": "<=", "=<": "<=", "≤": "<=", ">": ">", ">=": ">=", "=>": ">=", "≥": ">="}
# "below the detection limit" and its usual spellings, optionally with the limit: `(20)`,
# `(<20 IU/mL)`, `, 20`
_BELOW_WORDS = (
    "below detection limit", "below the detection limit", "below limit of detection",
    "below the limit of detection", "below detection", "undetectable", "not detected",
    "not detectable", "below lod", "<lod", "< lod", "bdl", "nd",
    "低于检测下限", "低于检出限", "低于检测限", "未检出", "检测不到", "未检测到",
)
_BELOW = re.compile(r"(" + "|".join(re.escape(w) for w in sorted(_BELOW_WORDS, key=len, reverse=True))
                    + r")\s*(?:[(（]\s*<?\s*([^)）]*?)\s*[)）]|[,，:：]\s*<?\s*(.+?))?\s*\Z", re.I | re.S)
BELOW_GIVEN = "below detection limit"

_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): number for number, name in enumerate(calendar.month_abbr) if name})
_MONTHS["sept"] = 9
_YEAR = r"(\d{4})"
_ISO_MONTH = re.compile(_YEAR + r"-(\d{1,2})\Z", re.ASCII)
_SLASH_MONTH = re.compile(r"(\d{1,2})/" + _YEAR + r"\Z", re.ASCII)
_ZH_MONTH = re.compile(_YEAR + r"\s*年\s*(\d{1,2})\s*月(?:份)?\Z")
_ZH_YEAR = re.compile(_YEAR + r"\s*年(?:份)?\Z")
_NAMED_MONTH = re.compile(r"([A-Za-z]+)\.?,?\s+" + _YEAR + r"\Z")
_YEAR_ONLY = re.compile(_YEAR + r"\Z", re.ASCII)


def plain(number: Decimal) -> str:
    """A Decimal as it is written, without exponent."""
    return f"{number:f}"


def _normal(text: str) -> str:
    return text.strip() if text.isascii() else unicodedata.normalize("NFKC", text).strip()


# --- censored quantities ---------------------------------------------------------------------


def censored(spec: FactSpec, raw: Any) -> Interval | None:
    """The interval a censored quantity gives (`<20`, `>= 2000 IU/mL`, `below detection limit
    (20)`, `未检出`, or a mapping with a FHIR `comparator`); None when `raw` is not written as
    one. Raises InvalidValue naming the fact and the value: a bound that does not convert, an
    empty interval, or "below the detection limit" without a limit where the fact declares
    none."""
    if not isinstance(raw, str):  # (a text, the usual case, is told first: a Mapping check is slow)
        if isinstance(raw, Mapping):
            comparator = raw.get("comparator")
            if comparator is None:
                return None
            if comparator not in ("<", "<=", ">", ">="):
                raise InvalidValue(spec.name, str(comparator), "a comparator is one of <, <=, >, >=")
            inner = {k: v for k, v in raw.items() if k != "comparator"}
            bound, unit = _bound(spec, inner, str(inner.get("value")))
            given = f"{comparator}{_bound_text(bound[0], unit)}"
            return _censored_interval(spec, comparator, bound[1], given, str(raw.get("value")))
        return None
    text = _normal(raw)
    below = _BELOW.match(text)
    if below is not None:
        limit_text = below.group(2) or below.group(3)
        if limit_text:
            bound, unit = _bound(spec, limit_text, raw)
            given = f"{BELOW_GIVEN} ({_bound_text(bound[0], unit)})"
            limit = bound[1]
        elif spec.detection_limit is not None:
            given, limit = BELOW_GIVEN, spec.detection_limit
        else:
            raise InvalidValue(spec.name, _cut(raw), "below the detection limit of which assay? "
                               f"give the limit, e.g. `<20` or `{BELOW_GIVEN} (20 {spec.unit})`")
        low = spec_minimum(spec)
        low = Decimal(0) if low is None or low < 0 else low
        if limit <= low:
            raise InvalidValue(spec.name, _cut(raw), f"a detection limit of {plain(limit)} "
                               f"{spec.unit} leaves no value at or above {plain(low)}")
        return Interval(low, limit, False, True, "below", given)
    match = _CENSORED.match(text)
    if match is None:
        return None
    op = _OPS[match.group(1)]
    bound, unit = _bound(spec, match.group(2), raw)
    return _censored_interval(spec, op, bound[1], f"{op}{_bound_text(bound[0], unit)}", raw)


def _censored_interval(spec: FactSpec, op: str, limit: Decimal, given: str, raw: str) -> Interval:
    low, high = spec_minimum(spec), spec_maximum(spec)
    if op in ("<", "<="):
        result = Interval(low, limit, False, op == "<", op, given)
    else:
        result = Interval(limit, high, op == ">", False, op, given)
    if result.low is not None and result.high is not None and (
            result.low > result.high or (result.low == result.high and (result.low_open or result.high_open))):
        raise InvalidValue(spec.name, _cut(raw), f"{given} leaves no value between the fact's "
                           f"minimum and maximum ({_range(spec)})")
    return result


def _bound(spec: FactSpec, text: Any, raw: Any) -> tuple[tuple[Decimal, Decimal], str]:
    """(the bound as written, the bound in the declared unit), and the unit as written."""
    from screener.values import _number_and_unit, quantity

    try:
        number, unit = _number_and_unit(spec, text)
        value = quantity(_unbounded(spec), text)[0]
    except InvalidValue as exc:
        raise InvalidValue(spec.name, _cut(raw), exc.reason) from None
    assert value is not None
    return (number, value), unit if unit and unit != spec.unit else ""


def _bound_text(number: Decimal, unit: str) -> str:
    return plain(number) + (f" {unit}" if unit else "")


@functools.lru_cache(maxsize=256)
def _unbounded(spec: FactSpec) -> FactSpec:
    """The fact without its range: a bound is checked as a bound, not as a value."""
    return dataclasses.replace(spec, minimum=None, maximum=None)


def spec_minimum(spec: FactSpec) -> Decimal | None:
    return None if spec.minimum is None else Decimal(str(spec.minimum))


def spec_maximum(spec: FactSpec) -> Decimal | None:
    return None if spec.maximum is None else Decimal(str(spec.maximum))


def _range(spec: FactSpec) -> str:
    low, high = spec_minimum(spec), spec_maximum(spec)
    return f"{'-' if low is None else plain(low)} to {'-' if high is None else plain(high)} {spec.unit}"


def _cut(raw: Any) -> str:
    from screener.values import _short

    return _short(raw)


# --- dates known to the month or the year --------------------------------------------------


def partial_date(spec: FactSpec, raw: Any) -> Interval | None:
    """The days of a month (`March 2021`, `Mar 2021`, `2021-03`, `03/2021`, `2021年3月`) or
    of a year (`2021`, `2021年`); None when `raw` is not written as one. Raises InvalidValue
    for a month that does not exist."""
    if not isinstance(raw, str):
        return None
    text = _normal(raw)
    year = month = None
    if match := _ISO_MONTH.match(text) or _ZH_MONTH.match(text):
        year, month = int(match.group(1)), int(match.group(2))
    elif match := _SLASH_MONTH.match(text):
        year, month = int(match.group(2)), int(match.group(1))
    elif match := _NAMED_MONTH.match(text):
        month = _MONTHS.get(match.group(1).lower())
        if month is None:
            return None
        year = int(match.group(2))
    elif match := _YEAR_ONLY.match(text) or _ZH_YEAR.match(text):
        year = int(match.group(1))
    else:
        return None
    if year < 1 or (month is not None and not 1 <= month <= 12):
        raise InvalidValue(spec.name, _cut(raw), "no such month")
    if month is None:
        return Interval(dt.date(year, 1, 1), dt.date(year, 12, 31), form="year", given=f"{year:04d}")
    last = calendar.monthrange(year, month)[1]
    return Interval(dt.date(year, month, 1), dt.date(year, month, last), form="month",
                    given=f"{year:04d}-{month:02d}")


# --- how one reads --------------------------------------------------------------------------


def show_interval(value: Interval, language: str = "en", unit: str = "") -> str:
    """How an interval reads for a person: `< 20 IU/mL`, `below the detection limit (< 20
    IU/mL)`, `March 2021` / `2021年3月`, `2021` / `2021年`, `17 to 18`; `unit` is the unit as
    a person writes it (the given one, when the record gave one, is kept in `given`)."""
    from screener.i18n import local_month, local_year, tr

    after = f" {unit}" if unit else ""
    if value.form == "month":
        return local_month(language, value.low)
    if value.form == "year":
        return local_year(language, value.low)
    if value.form == "below":
        if value.given == BELOW_GIVEN:
            return tr("below the detection limit").in_language(language)
        return tr("below the detection limit ({limit})",
                  limit=f"< {_written_end(value.high)}{_given_unit(value, after)}").in_language(language)
    if value.form in ("<", "<=", ">", ">="):
        sign = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}[value.form]
        end = value.high if value.form in ("<", "<=") else value.low
        return f"{sign} {_written_end(_given_bound(value, end))}{_given_unit(value, after)}"
    if value.low is None:
        return f"{'<' if value.high_open else '≤'} {_written_end(value.high)}{after}"
    if value.high is None:
        return f"{'>' if value.low_open else '≥'} {_written_end(value.low)}{after}"
    if value.low_open or value.high_open:
        left, right = "(" if value.low_open else "[", ")" if value.high_open else "]"
        return f"{left}{_written_end(value.low)}, {_written_end(value.high)}{right}{after}"
    return tr("{low} to {high}", low=_written_end(value.low),
              high=_written_end(value.high)).in_language(language) + after


_GIVEN_BOUND = re.compile(r"(?:<=|>=|<|>|below detection limit \()\s*([-+]?[\d.]+)\s*([^)]*)\)?\Z")


def _given_bound(value: Interval, end: Any) -> Any:
    """The bound as the record wrote it (`0.5` of `<0.5 mg/dL`), else the end itself."""
    match = _GIVEN_BOUND.match(value.given)
    return Decimal(match.group(1)) if match and match.group(2).strip() else end


def _given_unit(value: Interval, declared: str) -> str:
    """The unit the record wrote the bound in (as clinicians write it), else the declared one."""
    match = _GIVEN_BOUND.match(value.given)
    if match and match.group(2).strip():
        from screener.present import unit_text

        return f" {unit_text(match.group(2).strip())}"
    return declared


def _written_end(end: Any) -> str:
    if isinstance(end, Decimal):
        from screener.present import number_text

        return number_text(end)
    return _end(end)


def from_record(raw: Any) -> Interval | None:
    """The Interval a trace records (its `given` text, or a computed range's mapping), read
    without the fact's declaration, for showing it; None when `raw` is not one. A year alone
    reads as a number here."""
    if isinstance(raw, Mapping) and set(raw) <= {"from", "to", "from_open", "to_open"} and "from" in raw:
        def end(text: Any) -> Any:
            if text is None:
                return None
            try:
                return dt.date.fromisoformat(str(text))
            except ValueError:
                try:
                    return Decimal(str(text))
                except ArithmeticError:
                    return None
        return Interval(end(raw.get("from")), end(raw.get("to")), bool(raw.get("from_open")),
                        bool(raw.get("to_open")))
    if not isinstance(raw, str):
        return None
    text = _normal(raw)
    if match := _ISO_MONTH.match(text):
        year, month = int(match.group(1)), int(match.group(2))
        if 1 <= month <= 12 and year >= 1:
            last = calendar.monthrange(year, month)[1]
            return Interval(dt.date(year, month, 1), dt.date(year, month, last), form="month", given=text)
        return None
    if text.startswith(BELOW_GIVEN):
        inner = re.search(r"\(([-+]?[\d.]+)", text)
        limit = Decimal(inner.group(1)) if inner else None
        return Interval(Decimal(0), limit, False, True, "below", text)
    match = _CENSORED.match(text)
    if match is None:
        return None
    number = re.match(r"[-+]?\d+(?:\.\d+)?", match.group(2).strip())
    if number is None:
        return None
    op, bound = _OPS[match.group(1)], Decimal(number.group(0))
    if op in ("<", "<="):
        return Interval(None, bound, False, op == "<", op, text)
    return Interval(bound, None, op == ">", False, op, text)


def _end(end: Any) -> str:
    if isinstance(end, dt.date):
        return end.isoformat()
    if isinstance(end, Decimal):
        return plain(end)
    return str(end)


def interval_json(value: Interval) -> Any:
    """The JSON form of an interval that `coerce` reads back: the given text, or for a
    computed one `{"from": .., "to": .., "from_open": .., "to_open": ..}`."""
    if value.given:
        return value.given
    out: dict[str, Any] = {"from": _end(value.low) if value.low is not None else None,
                           "to": _end(value.high) if value.high is not None else None}
    if value.low_open:
        out["from_open"] = True
    if value.high_open:
        out["to_open"] = True
    return out
