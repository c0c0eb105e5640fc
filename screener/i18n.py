"""The product's own wording in the screening's language: gettext catalogues.

Trial wording (questions, criterion titles, clinical labels) lives in the dialog files; the
words of the screener itself (progress, plausibility checks, decision screens, letters) are
English message ids translated in `screener/locale/<lang>/LC_MESSAGES/screener.po`, compiled
to `.mo` with Babel (`make catalogues`). A language without a catalogue reads English.

Times are stored in UTC (traces) and shown in the site's time zone with its UTC offset: the
zone named by `--tz`, else the `TZ` environment variable, else the system's own.
"""
from __future__ import annotations

import datetime as dt
import functools
import gettext
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "screener"
# The Babel locale that gives each language its local date forms.
DATE_LOCALES = {"en": "en_GB", "zh": "zh_CN"}


@functools.lru_cache(maxsize=None)
def catalogue(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of `language` (English, the message ids, when there is none)."""
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language], fallback=True)


@dataclass(frozen=True, slots=True)
class Message:
    """A message of the screener kept untranslated until the language is known (an error
    raised deep down, reported in the screening's language). `str()` gives the English."""

    id: str
    params: dict[str, Any]

    def __str__(self) -> str:
        return self.id.format(**self.params) if self.params else self.id

    def in_language(self, language: str) -> str:
        return translate(language, self.id, **self.params)


def tr(message: str, **params: Any) -> Message:
    """Mark `message` (an English message id) for translation when it is shown."""
    return Message(message, params)


def translate(language: str, message: str, **params: Any) -> str:
    """`message` (an English message id) in `language`, with `params` filled in."""
    text = catalogue(language).gettext(message)
    return text.format(**params) if params else text


@functools.lru_cache(maxsize=4096)  # Babel's formatting costs more than a letter's other work
def local_date(language: str, day: dt.date) -> str:
    """A date as written in `language`: `13 March 1970`, `1970年3月13日`."""
    from babel.dates import format_date

    return format_date(day, "long", locale=DATE_LOCALES.get(language, language))


@functools.lru_cache(maxsize=1024)
def local_month(language: str, day: dt.date) -> str:
    """The month of `day` as written in `language`: `March 1970`, `1970年3月`."""
    from babel.dates import format_skeleton

    return format_skeleton("yMMMM", day, locale=DATE_LOCALES.get(language, language))


@functools.lru_cache(maxsize=256)
def local_year(language: str, day: dt.date) -> str:
    """The year of `day` as written in `language`: `1970`, `1970年`."""
    from babel.dates import format_skeleton

    return format_skeleton("y", day, locale=DATE_LOCALES.get(language, language))


def local_datetime(language: str, moment: dt.datetime) -> str:
    """A timezone-aware time as written in `language`, with its UTC offset:
    `4 Mar 2026, 17:30:00 UTC+08:00`, `2026年3月4日 17:30:00 UTC+08:00`."""
    from babel.dates import format_datetime

    offset = moment.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
    stamp = format_datetime(moment, "medium", locale=DATE_LOCALES.get(language, language))
    return f"{stamp} {offset}"


TZ_HELP = ("time zone in which letters and explanations show times, e.g. Asia/Shanghai "
           "(default: the TZ environment variable, else the system's zone)")


def site_zone(name: str | None) -> dt.tzinfo | None:
    """The time zone called `name` (an IANA name such as `Asia/Shanghai`), or None for the
    system's zone (which honours `TZ`). Raises ValueError naming an unknown zone."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; expected a name such as Asia/Shanghai "
                         "or Europe/Paris") from None


_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


def zone_name(zone: dt.tzinfo | None) -> str:
    """A name that `named_zone` reads back to the same zone: the IANA key of a named zone;
    for None (the system's zone) its IANA key when `TZ` or /etc/localtime names one, else
    the offset it has now, e.g. `+08:00`."""
    if isinstance(zone, ZoneInfo):
        return zone.key
    if zone is None:
        for candidate in (os.environ.get("TZ", "").lstrip(":"), _system_zone_key()):
            if candidate:
                try:
                    return ZoneInfo(candidate).key
                except (ZoneInfoNotFoundError, ValueError):
                    pass
    offset = dt.datetime.now(zone).astimezone(zone).utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def named_zone(name: str) -> dt.tzinfo:
    """The zone `zone_name` gave `name` for. Raises ValueError for an unknown one."""
    match = _OFFSET.match(name)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        return dt.timezone(sign * dt.timedelta(hours=int(match.group(2)),
                                               minutes=int(match.group(3))))
    zone = site_zone(name)
    if zone is None:
        raise ValueError("no time zone named")
    return zone


def _system_zone_key() -> str:
    """The IANA key /etc/localtime points at (`…/zoneinfo/Asia/Shanghai`), or ""."""
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return ""
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else ""


@functools.lru_cache(maxsize=4096)  # a letter shows the same few record times many times
def local_time(language: str, text: str, zone: dt.tzinfo | None = None) -> str:
    """A stored time (ISO 8601 with offset, as traces keep it) in the site's zone, written in
    `language` with its UTC offset: `4 Mar 2026, 17:30:00 UTC+08:00`."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return local_datetime(language, moment.astimezone(zone))
