"""The screener's own wording: every message has both languages, and the shipped catalogue is
the compiled form of its translations."""
from __future__ import annotations

import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from screener.i18n import LOCALE_DIR, local_date, translate

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ["zh"]  # English is the message ids themselves


def source_messages() -> set[str]:
    found = extract_from_dir(str(ROOT / "screener"),
                             method_map=[("**.py", "python"), ("templates/**.j2", "jinja2")],
                             options_map={"templates/**.j2": {"trim_blocks": "true",
                                                              "lstrip_blocks": "true"}},
                             keywords={"tr": None}, comment_tags=())
    return {message for _file, _line, message, _comments, _context in found}


def catalogue(language: str):
    with open(LOCALE_DIR / language / "LC_MESSAGES" / "screener.po", "rb") as handle:
        return read_po(handle, locale=language)


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_of_the_screener_is_translated(language: str) -> None:
    wanted = source_messages()
    assert wanted, "no messages found: the extraction keyword changed?"
    po = catalogue(language)
    translated = {m.id: m.string for m in po if m.id}
    assert sorted(wanted - set(translated)) == []
    for message in wanted:
        assert translated[message], f"{message!r} has no {language} text"
        assert fields(translated[message]) == fields(message), message
    assert sorted(set(translated) - wanted) == [], "stale messages: run make catalogues"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_shipped_catalogue_is_compiled_from_its_translations(language: str) -> None:
    # Compared message by message: the compiled header names the Babel version that wrote it,
    # so a byte comparison would fail on every Babel release.
    with open(LOCALE_DIR / language / "LC_MESSAGES" / "screener.mo", "rb") as handle:
        shipped = {m.id: m.string for m in read_mo(handle) if m.id}
    wanted = {m.id: m.string for m in catalogue(language) if m.id and m.string}
    assert shipped == wanted, "run make catalogues"


def test_messages_and_dates_read_in_the_screening_language() -> None:
    import datetime as dt

    assert translate("zh", "Question {number}, at most {left} left", number=7, left=12) == "第 7 题，最多还剩 12 题"
    assert translate("en", "Question {number}, at most {left} left", number=7, left=12) == "Question 7, at most 12 left"
    assert local_date("zh", dt.date(1970, 3, 13)) == "1970年3月13日"
    assert local_date("en", dt.date(1970, 3, 13)) == "13 March 1970"
