"""The product's own wording in the screening's language: gettext catalogues.

Trial wording (questions, criterion titles, clinical labels) lives in the dialog files; the
words of the screener itself (progress, plausibility checks, decision screens, letters) are
English message ids translated in `screener/locale/<lang>/LC_MESSAGES/screener.po`, compiled
to `.mo` with Babel (`make catalogues`). A language without a catalogue reads English.
"""
from __future__ import annotations

import datetime as dt
import functools
import gettext
from pathlib import Path
from typing import Any

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "screener"
# The Babel locale that gives each language its local date forms.
DATE_LOCALES = {"en": "en_GB", "zh": "zh_CN"}


@functools.lru_cache(maxsize=None)
def catalogue(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of `language` (English, the message ids, when there is none)."""
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language], fallback=True)


def translate(language: str, message: str, **params: Any) -> str:
    """`message` (an English message id) in `language`, with `params` filled in."""
    text = catalogue(language).gettext(message)
    return text.format(**params) if params else text


def local_date(language: str, day: dt.date) -> str:
    """A date as written in `language`: `13 March 1970`, `1970年3月13日`."""
    from babel.dates import format_date

    return format_date(day, "long", locale=DATE_LOCALES.get(language, language))


def local_datetime(language: str, moment: dt.datetime) -> str:
    """A timezone-aware time as written in `language`, with the UTC offset kept."""
    from babel.dates import format_datetime

    offset = moment.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
    stamp = format_datetime(moment, "medium", locale=DATE_LOCALES.get(language, language))
    return f"{stamp} ({offset})"
