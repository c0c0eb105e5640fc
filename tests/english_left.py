"""Finds English left in what a Chinese screening shows: the words that remain once the
protocol's verbatim text, codes (fact names, criterion and rule ids, the trial id, file
names and paths, hashes, numbers, a list item's `field=value` pairs, which the Chinese dialog
asks in that form too) and the Latin terms the Chinese dialog file itself uses (GIST, ECOG,
Child-Pugh, units) are taken out. A zh letter, explain or verify output should leave
nothing."""
from __future__ import annotations

import html.parser
import re
from typing import Any, Iterable

# What a run of ASCII characters in the text can be; each run is judged whole.
_RUN = re.compile(r"[A-Za-z0-9_.\-/*:+'@#%=~]+")
_WORD = re.compile(r"[A-Za-z]{2,}")
_HASH = re.compile(r"[0-9a-f]{64}")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_TERM = re.compile(r"\b[A-Za-z][a-z]*[A-Z][A-Za-z]*")  # an uppercase letter past the first: INR, eGFR, HbA1c
# Not English to a Chinese reader: the zone name, the hash algorithm, the command to type
# (command-line options, `--rules`, are codes too).
FIXED = {"UTC", "sha256"}
COMMANDS = ("screener verify",)


def plain_html(text: str) -> str:
    """The text a reader sees in an HTML document (style sheet left out, entities read)."""

    class Reader(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.skip = 0

        def handle_starttag(self, tag: str, attrs: Any) -> None:
            self.skip += tag == "style"
            self.parts.append("\n")

        def handle_endtag(self, tag: str) -> None:
            self.skip -= tag == "style"
            self.parts.append("\n")

        def handle_data(self, data: str) -> None:
            if not self.skip:
                self.parts.append(data)

    reader = Reader()
    reader.feed(text)
    return "".join(reader.parts)


def plain_markdown(text: str) -> str:
    """The text of a Markdown letter as a reader sees it: escapes and line breaks read, HTML
    comments (the letter's machine stamp) not shown."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return re.sub(r"\\(.)", r"\1", text.replace("<br>", "\n"))


def codes_of(start: dict[str, Any], records: Iterable[dict[str, Any]] = ()) -> set[str]:
    """The codes a trace names: facts, criteria, rules that fired, trial id, rules file."""
    trial = start["trial"]
    codes = {trial["id"], trial["rules_file"], *trial["facts"]}
    codes |= {c["id"] for c in trial["criteria"]}
    codes |= {str(r["rule"]) for r in records if r.get("type") == "firing"}
    codes |= {str(start.get("candidate_id") or "")}
    return codes - {""}


def verbatim_of(start: dict[str, Any]) -> list[str]:
    """The protocol's own words a letter quotes: criterion texts and the registered title."""
    trial = start["trial"]
    return sorted({c["protocol"].strip() for c in trial["criteria"]} | {trial["title"]},
                  key=len, reverse=True)


def terms_of(wording: dict[str, Any], units: Iterable[str] = ()) -> set[str]:
    """Latin words the Chinese wording itself uses (GIST, ECOG, INR, GLP-1...), and the units."""
    texts: list[str] = [wording.get("trial_title", "")]
    for key in ("titles", "protocol_translations", "notes"):
        texts += list(wording.get(key, {}).values())
    for label in wording.get("labels", {}).values():
        # a label with no Chinese in it is a term (INR, QTcF) or a fact's name in English words
        # (`Eye exam method`, the label a fact without one in the dialog file gets): only terms count
        texts.append(label if _CJK.search(label) else " ".join(_TERM.findall(label)))
    for labels in [*wording.get("values", {}).values(), *wording.get("fields", {}).values()]:
        texts += list(labels.values())
    for fields in wording.get("field_values", {}).values():  # a list item's values (DPP-4 抑制剂)
        for labels in fields.values():
            texts += list(labels.values())
    texts += list(units)
    return {word for text in texts for word in _WORD.findall(text)}


def english_left(text: str, verbatim: Iterable[str], codes: set[str], terms: set[str]) -> list[str]:
    """The English words left in `text`, in order of appearance."""
    for quote in verbatim:
        text = text.replace(quote, " ")
    for command in COMMANDS:
        text = text.replace(command, " ")
    left: list[str] = []
    for run in _RUN.findall(text):
        bare = run.strip(".:;,'")
        if bare in codes or bare in FIXED or "/" in bare or "=" in bare or bare.startswith("--") or _HASH.fullmatch(bare) or bare.endswith((".jsonl", ".yaml")):
            continue
        left += [w for w in _WORD.findall(bare) if w not in terms and w not in FIXED]
    return left
