"""UCUM units: read a code, name its dimension, and convert between codes.

The unit system is pint with ucumvert's UCUM grammar and definitions; nothing here is a
table of our own. Building the pint registry takes about a second, so it is built once per
process and only when a unit is first needed (a trial without quantities never pays for it).

Two conversions the unit system would make are refused, because for laboratory values they
silently give wrong numbers:
- between dimensionless codes that differ (`%` and `mmol/mol` are both ratios to pint, but an
  HbA1c in % (NGSP) is not ten times the one in mmol/mol (IFCC));
- between codes whose UCUM annotations differ (`mL/min/{1.73_m2}`, an eGFR normalised to body
  surface, is not `mL/min`, a clearance).
Both are possible when the fact declares the analyte's conversion (`convert:` in the rules).
"""
from __future__ import annotations

import contextlib
import functools
import re
import threading
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Mapping

MAX_CODE = 64  # longer text is not a unit code (and would cost the parser time)
# The largest power a code may raise a unit to (`10*12/L`, `m3`, `10*-15`). The unit system
# computes `10*n` as the integer 10**n, which for n in the billions takes minutes and
# gigabytes; no laboratory unit comes near 99.
MAX_EXPONENT = 99
_DIGITS = 14  # significant digits kept of a factor computed in binary floating point
_ANNOTATION = re.compile(r"\{[^{}]*\}")
_EMPTY: Mapping[str, Decimal] = {}


class UnitError(ValueError):
    """A unit code is not UCUM, or one unit does not convert to another."""


@dataclass(frozen=True, slots=True)
class Conversion:
    """`to = given × factor + offset`; the offset is 0 except for affine scales (HbA1c %)."""

    factor: Decimal
    offset: Decimal = Decimal(0)

    def apply(self, value: Decimal) -> Decimal:
        return value * self.factor + self.offset


class _Units:
    """The pint registry with the UCUM definitions, and the UCUM parser feeding it."""

    def __init__(self) -> None:
        pint = _pint()  # imported here: importing pint alone costs a third of a second
        import ucumvert
        from ucumvert import UcumToPintTransformer, get_ucum_parser

        self.registry = _registry(pint)
        self.registry.load_definitions(Path(ucumvert.__file__).parent / "pint_ucum_defs.txt")
        self.parser = get_ucum_parser()
        self.transformer = UcumToPintTransformer(ureg=self.registry)

    def quantity(self, code: str) -> Any:
        from ucumvert import parse_ucum

        try:
            tree = parse_ucum(code, self.parser)
        except Exception as exc:  # lark's errors: the text is not in the UCUM grammar
            raise UnitError(f"{code!r} is not a UCUM unit code{_reason(exc)}") from None
        _check_exponents(code, tree)
        try:
            result = self.transformer.transform(tree)
            if not hasattr(result, "units"):  # a bare number such as "10*3"
                result = self.registry.Quantity(result, "")
            result.to_base_units()  # an exponent too large overflows here, not later
        except Exception as exc:  # lark, pint and arithmetic errors all mean "not a unit"
            raise UnitError(f"{code!r} is not a UCUM unit code{_reason(exc)}") from None
        return result


# Packages pint takes up when it can import them, which the screener never gives it
_PINT_OPTIONAL = ("numpy", "dask")


def _pint() -> Any:
    """pint, imported without numpy and dask when they are not loaded yet: pint takes numpy
    when it can import it (15 MB and a tenth of a second more for every process and worker),
    and imports dask whenever it is installed (the cluster extra: nearly a tenth of a second
    more), and the screener gives it plain numbers only. Both stay importable for everything
    else."""
    import sys

    if "pint" in sys.modules:
        import pint

        return pint
    blocked = [name for name in _PINT_OPTIONAL if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # `import numpy` raises ImportError
    try:
        import pint
    finally:
        for name in blocked:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
    return pint


def _check_exponents(code: str, tree: Any) -> None:
    """Refuse a code with a power beyond MAX_EXPONENT before anything computes it."""
    for token in tree.scan_values(lambda value: getattr(value, "type", None) == "EXPONENT"):
        digits = str(token).lstrip("+-")
        if len(digits) > len(str(MAX_EXPONENT)) or int(digits) > MAX_EXPONENT:
            raise UnitError(f"{code!r} is not a UCUM unit code the screener accepts: a power beyond {MAX_EXPONENT}")


CACHE_VARIABLE = "SCREENER_CACHE_DIR"


def _registry(pint: Any) -> Any:
    """pint's registry, built from its definitions; from pint's definition cache (no candidate
    data: unit definitions only) in `$SCREENER_CACHE_DIR/pint` when the user names that folder,
    which halves the time it takes. Without it nothing is written (not pint's own ~/.cache)."""
    import os

    folder = os.environ.get(CACHE_VARIABLE)
    if folder:
        try:
            return pint.UnitRegistry(cache_folder=Path(folder) / "pint")
        except Exception:  # noqa: BLE001 - a cache that cannot be kept: build it from the definitions
            pass
    return pint.UnitRegistry(cache_folder=None)


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    if "unexpected" in text:
        return ": " + text.split(": ", 1)[-1].rstrip(".")
    return ""


_lock = threading.Lock()
_units: _Units | None = None


def _system() -> _Units:
    global _units
    with _lock:
        if _units is None:
            _units = _Units()
        return _units


def _parsed(code: str) -> Any:
    found, refusal = _parsed_or_refused(code)
    if refusal is not None:
        raise UnitError(refusal)
    return found


# --- answers kept between processes -------------------------------------------------------
# Building the unit system costs more than the rest of a process's start with a warm compile
# cache, and a screening asks it few questions: is a code UCUM, what is its dimension, how
# does one code convert into another. With SCREENER_CACHE_DIR set, its answers are kept in
# the cache (keyed by the screener's and the unit system's versions, screener.rules.cache)
# and read back on the first question, so a process that meets only codes met before never
# builds it. Only codes the unit system accepted are kept, and of those with an annotation
# (`{1.73_m2}`, free text in UCUM) only the ones a rules file names: never free text of a record.
_kept: dict[tuple[str, ...], Any] | None = None  # question -> answer, None until first asked
_keeping = False  # whether the answers are written when the process ends
_naming_rules = 0  # > 0 while a rules file is checked
_MAX_KEPT = 4096


def _answers() -> dict[tuple[str, ...], Any]:
    global _kept
    if _kept is None:
        from screener.rules import cache

        found = cache.read("units", ())
        _kept = {question: answer for question, answer in found.items() if _well_formed(question, answer)} \
            if type(found) is dict else {}
    return _kept


def _well_formed(question: Any, answer: Any) -> bool:
    """Whether a kept question and answer are of the kinds `_answer` keeps (an entry is
    checked whole when read, but an answer of a wrong kind must not reach a conversion)."""
    if type(question) is not tuple or not all(type(part) is str for part in question):
        return False
    if question[:1] == ("unit",):
        return len(question) == 2 and answer is None
    if question[:1] == ("dimension",):
        return len(question) == 2 and type(answer) is str
    if question[:1] == ("conversion",) and len(question) == 3:
        return type(answer) is str or (type(answer) is Conversion and type(answer.factor) is Decimal
                                       and type(answer.offset) is Decimal and answer.factor.is_finite()
                                       and answer.factor != 0 and answer.offset.is_finite())
    return False


def _keepable(code: str) -> bool:
    """Whether answers about `code` may be kept: it is a UCUM code kept already."""
    return _kept is not None and _kept.get(("unit", code), False) is None


def _answer(question: tuple[str, ...], ask: Any) -> Any:
    """The unit system's answer to `question`, kept or asked (`ask()`) and then kept."""
    global _keeping
    answers = _answers()
    try:
        return answers[question]
    except KeyError:
        pass
    found = ask()
    if question[0] == "unit":
        keep = found is None and ("{" not in question[1] or _naming_rules > 0)
    else:
        keep = all(map(_keepable, question[1:]))
    if keep and len(answers) < _MAX_KEPT:
        answers[question] = found
        if not _keeping:
            import atexit

            atexit.register(_keep_answers)
            _keeping = True
    return found


def _keep_answers() -> None:
    """Write the answers of this process beside those another process kept meanwhile."""
    from screener.rules import cache

    if _kept is None or cache.folder(create=False) is None:
        return
    found = cache.read("units", ())
    merged = dict(found) if type(found) is dict else {}
    for question, answer in _kept.items():
        if len(merged) >= _MAX_KEPT:
            break
        merged.setdefault(question, answer)
    cache.write("units", (), merged)


@contextlib.contextmanager
def naming_rules() -> Iterator[None]:
    """While a rules file is checked: the codes asked about are the rules' own, and those with
    annotations may be kept too."""
    global _naming_rules
    _naming_rules += 1
    try:
        yield
    finally:
        _naming_rules -= 1


def check_unit(code: str) -> None:
    """Nothing when `code` is a UCUM unit code; UnitError saying why not otherwise."""
    refusal = _answer(("unit", code), lambda: _parsed_or_refused(code)[1])
    if refusal is not None:
        raise UnitError(refusal)


@functools.lru_cache(maxsize=512)
def _parsed_or_refused(code: str) -> tuple[Any, str | None]:
    # a refusal is remembered too: a file whose every row has the same bad unit parses it once
    if not isinstance(code, str) or not code or len(code) > MAX_CODE or code != code.strip():
        return None, f"{code!r} is not a UCUM unit code"
    try:
        return _system().quantity(code), None
    except UnitError as refused:
        return None, str(refused)


def parse_unit(code: str) -> Any:
    """The pint unit of a UCUM code (`mg/dL`, `10*9/L`, `mm[Hg]`); UnitError if not UCUM.

    A code with a number in it (`10*9/L`) gives a pint quantity whose magnitude is that
    number; `factor` accounts for it."""
    return _parsed(code)


def _annotations(code: str) -> tuple[str, ...]:
    return tuple(sorted(_ANNOTATION.findall(code)))


def dimension(code: str) -> str:
    """A canonical text of the code's dimension; two codes convert into each other without a
    declared factor exactly when their dimensions are equal.

    `dimension("g/dL") == dimension("g/L") == "[mass] / [length] ** 3"`; dimensionless codes
    other than `1` keep their code (`"1 [%]"`), and annotations are kept (`{1.73_m2}`)."""
    check_unit(code)
    return _answer(("dimension", code), lambda: _dimension(code))  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=512)
def _dimension(code: str) -> str:
    quantity = _parsed(code)
    text = str(quantity.dimensionality) or "1"
    if text == "dimensionless":
        text = "1"
    if text == "1" and _ANNOTATION.sub("", code) not in ("", "1"):
        text = f"1 [{_ANNOTATION.sub('', code)}]"
    for annotation in _annotations(code):
        text += f" {annotation}"
    return text


def _round(number: float) -> Decimal:
    value = Decimal(repr(number))
    if not value.is_finite() or value == 0:
        raise UnitError(f"conversion factor {number!r} is not usable")
    shift = _DIGITS - value.adjusted() - 1
    value = value.quantize(Decimal(1).scaleb(-shift)).normalize()
    if value.as_tuple().exponent <= 0:  # type: ignore[operator]
        return value
    with localcontext() as context:  # 1E+72 (from 10*81/L) as an integer has 73 digits
        context.prec = max(context.prec, value.adjusted() + 1)
        return value.quantize(Decimal(1))


def _unit_conversion(from_code: str, to_code: str) -> Conversion:
    """The unit system's conversion between two codes; UnitError when there is none."""
    if from_code == to_code:
        return Conversion(Decimal(1))
    check_unit(from_code)
    check_unit(to_code)
    found = _answer(("conversion", from_code, to_code), lambda: _conversion_or_refusal(from_code, to_code))
    if isinstance(found, str):
        raise UnitError(found)
    return found  # type: ignore[no-any-return]


def _conversion_or_refusal(from_code: str, to_code: str) -> Conversion | str:
    try:
        return _pint_conversion(from_code, to_code)
    except UnitError as refused:
        return str(refused)


@functools.lru_cache(maxsize=1024)
def _pint_conversion(from_code: str, to_code: str) -> Conversion:
    if from_code == to_code:
        return Conversion(Decimal(1))
    if dimension(from_code) != dimension(to_code):
        raise UnitError(f"{from_code} does not convert to {to_code} "
                        f"({dimension(from_code)} is not {dimension(to_code)})")
    source, target = _parsed(from_code), _parsed(to_code)
    registry = _system().registry
    try:
        def to(amount: float) -> float:
            given = registry.Quantity(amount * source.magnitude, source.units)
            return float(given.to(target.units).magnitude / target.magnitude)

        zero = to(0.0)
        scale = to(1.0) - zero
    except Exception as exc:
        raise UnitError(f"{from_code} does not convert to {to_code}: {exc}") from None
    offset = Decimal(0) if zero == 0 else _round(zero)
    return Conversion(_round(scale), offset)


def conversion(from_code: str, to_code: str, convert: Mapping[str, Decimal] = _EMPTY,
               offsets: Mapping[str, Decimal] = _EMPTY) -> Conversion:
    """How a value in `from_code` becomes one in `to_code`.

    `convert` holds the fact's analyte-specific factors (unit -> factor into `to_code`) and
    `offsets` the offsets of its affine ones (HbA1c: % = 0.09148 × mmol/mol + 2.152). A
    declared unit is used directly; a unit of the same dimension as a declared one is
    converted to it by the unit system first (`mg/L` through a declared `mg/dL`).
    Raises UnitError when no conversion exists."""
    check_unit(to_code)
    if from_code in convert:
        return Conversion(convert[from_code], offsets.get(from_code, Decimal(0)))
    try:
        return _unit_conversion(from_code, to_code)
    except UnitError as direct:
        for declared, scale in convert.items():
            try:
                first = _unit_conversion(from_code, declared)
            except UnitError:
                continue
            if first.offset:
                continue
            return Conversion(first.factor * scale, offsets.get(declared, Decimal(0)))
        raise direct


@functools.lru_cache(maxsize=1024)
def _shorter(from_code: str, to_code: str) -> tuple[Fraction, Fraction]:
    """The unit system's factor (and offset) from one code to another as a fraction: of the
    factor and the inverse of the reverse factor, the shorter, so 1 h is 1/24 d and 1 kPa is
    1/0.133322 mm[Hg], not their 14-digit roundings."""
    forward = _unit_conversion(from_code, to_code)
    if forward.offset:
        return Fraction(forward.factor), Fraction(forward.offset)
    found = Fraction(forward.factor)
    try:
        backward = 1 / Fraction(_unit_conversion(to_code, from_code).factor)
    except (UnitError, ZeroDivisionError):
        return found, Fraction(0)
    return (backward if backward.denominator < found.denominator else found), Fraction(0)


def exact_conversion(from_code: str, to_code: str, convert: Mapping[str, Decimal] = _EMPTY,
                     offsets: Mapping[str, Decimal] = _EMPTY) -> tuple[Fraction, Fraction]:
    """`conversion` as exact fractions (factor, offset): a declared factor as written, the
    unit system's as `_shorter` reads it. Raises UnitError when no conversion exists."""
    check_unit(to_code)
    if from_code in convert:
        return Fraction(convert[from_code]), Fraction(offsets.get(from_code, Decimal(0)))
    try:
        return _shorter(from_code, to_code)
    except UnitError as direct:
        for declared, scale in convert.items():
            try:
                first, shift = _shorter(from_code, declared)
            except UnitError:
                continue
            if shift:
                continue
            return first * Fraction(scale), Fraction(offsets.get(declared, Decimal(0)))
        raise direct


def factor(from_code: str, to_code: str, convert: Mapping[str, Decimal] = _EMPTY) -> Decimal:
    """How many `to_code` units one `from_code` unit is (`factor("g/dL", "g/L") == 10`).

    `convert` holds the fact's analyte-specific factors (from unit -> declared unit).
    UnitError when it cannot convert, or when the conversion is not a plain factor (a
    temperature scale, an affine analyte conversion: use `conversion`)."""
    found = conversion(from_code, to_code, convert)
    if found.offset:
        raise UnitError(f"{from_code} converts to {to_code} with an offset, not by a factor")
    return found.factor


def positive_factor(text: Any) -> Decimal | None:
    """A declared conversion factor as a Decimal when it is a positive finite number."""
    if isinstance(text, bool) or not isinstance(text, (int, float, str, Decimal)):
        return None
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        return None
    return value if value.is_finite() and value > 0 else None
