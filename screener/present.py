"""Where a value becomes words a person reads: the clinical label of a fact, its unit as
clinicians write it, a clinical precision, list items as readable lines, in the screening's
language; and, for messages that name a value before any language is chosen (a batch
record's errors and warnings, `screener.errors`), the same value in plain words (`show`).

The dialog (`screener.dialog.render`) and everything rendered from a trace (letters,
`explain`, `verify`, through `screener.audit.words`) word values here, so no screen, letter
or message shows a Python repr, a UCUM code or a name the rules use internally. Presentation
never decides: the exact value stays in the trace, and a shown value is only rounded where
rounding cannot make it look like a round limit it is not (see `number_text`).
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Callable, Mapping

from screener.i18n import Message, tr
from screener.model import Interval, Special

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")

# UCUM codes clinicians write otherwise (the rest is tidied by `unit_text`'s general rules).
_UNITS = {
    "umol/L": "µmol/L", "[IU]/mL": "IU/mL", "[iU]/mL": "IU/mL", "[IU]/L": "IU/L",
    "mm[Hg]": "mmHg", "Cel": "°C", "/min": "/min", "%": "%",
    "mL/min/{1.73_m2}": "mL/min/1.73 m²",
}
# Units that are words, translated into the screening's language.
_WORD_UNITS = {"years": tr("years"), "a": tr("years"), "mo": tr("months"), "wk": tr("weeks"),
               "d": tr("days"), "h": tr("hours")}
_WORDS = {"unknown": tr("unknown"), "yes": tr("yes"), "no": tr("no"), "never": tr("never"),
          "ongoing": tr("ongoing"), "none": tr("none")}


def _say(language: str, word: str | Message) -> str:
    return (_WORDS[word] if isinstance(word, str) else word).in_language(language)


def unit_text(unit: str, language: str = "en") -> str:
    """A UCUM unit as clinicians write it: `umol/L` → `µmol/L`, `10*9/L` → `×10⁹/L`,
    `kg/m2` → `kg/m²`, `mm[Hg]` → `mmHg`; a time unit as a word in `language` (`d` → days)."""
    if not unit:
        return ""
    if unit in _WORD_UNITS:
        return _say(language, _WORD_UNITS[unit])
    if unit in _UNITS:
        return _UNITS[unit]
    text = re.sub(r"10\*(-?\d+)", lambda m: "×10" + m.group(1).translate(_SUPERSCRIPT), unit)
    text = re.sub(r"(?<![A-Za-z])u(?=(mol|g|L|U|IU)\b)", "µ", text)
    text = re.sub(r"\{([^}]*)\}", lambda m: m.group(1).replace("_", " "), text)
    text = re.sub(r"(?<=[A-Za-z])([23])\b", lambda m: m.group(1).translate(_SUPERSCRIPT), text)
    return text.replace("[", "").replace("]", "")


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d+)?", value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            return None
    return None


def _written(number: Decimal) -> str:
    """A Decimal without exponent and without trailing zeros after the point."""
    text = f"{number:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def number_text(value: Any) -> str:
    """A number at a clinical precision: as written, trailing zeros dropped, when it has at most
    two decimals (a value as given); a longer one, as computed values are (`91.2063`), to 0
    decimals from 100, 1 from 10, else 2. A value
    rounded to a last digit of 0 or 5 that it does not have exactly (`49.96` → `50.0`) gets
    more decimals, so that it never reads as the round limit of a criterion it misses. A
    number longer than any measurement is written (a forged trace's 4,200 digits) is cut,
    marked `…` (`shortened`); the trace keeps it whole."""
    return shortened(_number_text(value))


def _number_text(value: Any) -> str:
    number = _decimal(value)
    if number is None:
        return str(value)
    if not number.is_finite():
        return str(value)
    size = abs(number)
    places = 0 if size >= 100 else 1 if size >= 10 else 2
    written = _written(number)
    if len(written.partition(".")[2]) <= max(places, 2):  # as given: never rounded
        return written
    while places <= 6:
        shown = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
        if shown == number or f"{shown:f}"[-1] not in "05":
            return _written(shown)
        places += 1
    return _written(number)


def quantity_text(value: Any, unit: str, language: str = "en") -> str:
    """A number with its unit as clinicians write it: `91.2 mL/min`, `3.2 ×10⁹/L`, `60 years`."""
    shown = unit_text(unit, language)
    number = number_text(value)
    if not shown:
        return number
    return f"{number}%" if shown == "%" else f"{number} {shown}"


def humanize(name: str) -> str:
    """A name of the rules in words, for when no label is given: `end_date` → `end date`."""
    return name.replace("_", " ").strip()


def label_from(name: str, description: str = "") -> str:
    """A fact's label when no dialog file gives one: its description when that is short (one
    phrase, without the full stop), else the name in words (`last_dvt_date` → `Last dvt date`)."""
    text = " ".join(description.split()).rstrip(".")
    if text and len(text) <= 60 and ". " not in text:
        return text
    words = humanize(name)
    return words[:1].upper() + words[1:]


def plain_value(value: Any, language: str = "en", *, unit: str = "",
                date: Callable[[dt.date], str] | None = None) -> str:
    """A single value in `language`: yes/no, never/ongoing, unknown, dates (`date` words
    them; ISO otherwise), numbers at a clinical precision with their unit, words as written
    (an enum value's underscores as spaces)."""
    if value is None:
        return _say(language, "unknown")
    if isinstance(value, bool):
        return _say(language, "yes" if value else "no")
    from screener.intervals import from_record, show_interval  # (intervals reads errors, which read this)

    ranged = value if isinstance(value, Interval) else from_record(value)
    if ranged is not None:  # a censored result, a month, a computed range
        return show_interval(ranged, language, unit_text(unit, language))
    special = getattr(value, "value", value)  # Special.NEVER / Special.ONGOING
    if special in ("never", "ongoing"):
        return _say(language, str(special))
    if isinstance(value, dt.date):
        return date(value) if date else value.isoformat()
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            return value
        return date(day) if date else value
    if _decimal(value) is not None:
        return quantity_text(value, unit, language)
    if isinstance(value, Mapping):
        return ", ".join(f"{humanize(str(k))} {plain_value(v, language, date=date)}"
                         for k, v in value.items() if v is not None)
    if isinstance(value, (list, tuple)):
        return "; ".join(plain_value(v, language, date=date) for v in value)
    return humanize(str(value)) if re.fullmatch(r"[a-z0-9_]+", str(value)) else str(value)


def list_text(items: Any, language: str = "en", *,
              field_label: Callable[[str], str] = humanize,
              field_value: Callable[[str, Any], str] | None = None) -> str:
    """The items of a list fact as readable items, `(1) regimen: folfirinox, setting: advanced;
    (2) ...` (one item without its number); `none` for an empty list. `field_label` words a
    field's name, `field_value` a field's value (default: `plain_value`)."""
    if not items:
        return _say(language, "none")

    def value(name: str, raw: Any) -> str:
        return field_value(name, raw) if field_value else plain_value(raw, language)

    colon, comma = ("：", "，") if language == "zh" else (": ", ", ")
    shown = []
    for item in items:
        if isinstance(item, Mapping):
            shown.append(comma.join(f"{field_label(str(k))}{colon}{value(str(k), v)}"
                                    for k, v in item.items() if v is not None))
        else:
            shown.append(plain_value(item, language))
    if len(shown) == 1:
        return shown[0]
    separator = "；" if language == "zh" else "; "
    return separator.join(f"({number}) {text}" for number, text in enumerate(shown, 1))


# --- plain words, before a language is chosen -----------------------------------------------
# The values and errors that print values (batch records, error messages) word them here, so
# an error message never shows a Python repr.

SHOWN_CHARS = 24  # of a value quoted in a message: enough to find it in its file


def shortened(text: str) -> str:
    """The start of a long value, enough to find it, marked as cut."""
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def plain(number: Decimal) -> str:
    """A Decimal as it is written, without exponent (1E+1 reads 10)."""
    return f"{number:f}"


def show(value: Any) -> str:
    """How a value reads for a person: yes/no, ISO dates, numbers without trailing '.0',
    quantities as their decimals, a list as `field=value, ...` items joined by `; `."""
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Interval):
        from screener.intervals import show_interval

        return show_interval(value)
    if isinstance(value, Special):
        return value.value
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, (tuple, list)):
        if not value:
            return "none"
        return "; ".join(", ".join(f"{k}={show(v)}" for k, v in item.items() if v is not None)
                         if isinstance(item, Mapping) else show(item) for item in value)
    return str(value)


def computed(value: Any, decimals: int = 4) -> tuple[Any, str]:
    """A computed value cut for a person to read, and the mark to show after it: at most
    `decimals` decimals, marked `…` when cut (a clearance of 77.777… mL/min reads 77.7778…).
    The value itself is never rounded for a decision; this is for display only."""
    if isinstance(value, Decimal) and value.is_finite():
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -decimals:
            try:
                return value.quantize(Decimal(1).scaleb(-decimals)), "…"
            except ArithmeticError:
                pass
    return value, ""
