"""Eligibility letters, rendered from a trace alone, as Markdown or printable HTML.

`build_letter` turns a checked trace into plain data (`Letter`) in the screening's language
(`screener.audit.words`); `render_letter` fills a Jinja2 template from the package, whose own
words go through `tr(...)` (the gettext catalogue; Babel extracts them from the templates too).
Given the same trace, hashes, issue time and zone, the output is the same byte for byte. Presentation never decides: every outcome comes from the trace.
"""
from __future__ import annotations

import datetime as _dt
import functools
import re
from dataclasses import dataclass
from typing import Any

import jinja2
import markupsafe

from screener.audit.keys import readable_fingerprint
from screener.audit.chain import Trace, final_facts
from screener.audit.words import Words
from screener.rules.collect import describe_ref, parse_ref
from screener.i18n import translate, zone_name
from screener.safe import safe_text

FORMATS = ("md", "html")


def decision_words(words: Words, decision: str) -> str:
    """The decision as the letter's headline states it, in the letter's language."""
    return {
        "eligible": words.tr("Eligible: every inclusion criterion is met and no exclusion "
                             "criterion applies."),
        "ineligible": words.tr("Not eligible: at least one inclusion criterion is not met or "
                               "one exclusion criterion applies."),
        "undetermined": words.tr("Not yet determined: information needed to decide is missing."),
    }[decision]


def kind_words(words: Words, kind: str) -> str:
    """`inclusion` or `exclusion` in the letter's language."""
    return words.tr("inclusion") if kind == "inclusion" else words.tr("exclusion")


def outcome_words(words: Words, kind: str, outcome: str) -> str:
    """A criterion's outcome as the letter states it, in the letter's language."""
    texts = {
        ("inclusion", "met"): words.tr("met"),
        ("inclusion", "not_met"): words.tr("not met (excludes the candidate)"),
        ("exclusion", "met"): words.tr("applies (excludes the candidate)"),
        ("exclusion", "not_met"): words.tr("does not apply"),
    }
    return texts.get((kind, outcome), words.tr("unknown (information missing)"))


@dataclass(frozen=True, slots=True)
class Evidence:
    """One fact shown under a criterion: value as read by a person, source, time, history."""

    name: str
    label: str  # the clinical label in the letter's language
    description: str
    value: str
    source: str
    time: str
    corrections: tuple[str, ...]  # "was X (source, time) changed to Y at T: reason", oldest first
    source_ref: int = 0  # the number of its (source, time) in `Letter.sources`


@dataclass(frozen=True, slots=True)
class SourceLine:
    """Where and when a group of facts was given, listed once (the appendix refers to it by
    number rather than repeating it under every fact)."""

    number: int
    source: str
    time: str
    count: int  # how many facts of the letter came from it


@dataclass(frozen=True, slots=True)
class CriterionRow:
    """One criterion in the letter's table."""

    id: str
    kind: str  # inclusion / exclusion, in the letter's language
    title: str
    protocol: str  # verbatim
    protocol_translation: str  # in the letter's language; "" when the dialog file gave none
    note: str
    outcome: str  # met / not_met / unknown
    outcome_text: str
    excludes: bool
    evidence: tuple[Evidence, ...]
    missing: tuple[str, ...]  # clinical labels of the facts it waits for
    not_assessed: bool = False  # left unknown because another criterion had already excluded
    mark: str = ""  # the checklist's sign: ✓ met as hoped, ✗ excludes, ? unknown, – not assessed


@dataclass(frozen=True, slots=True)
class MissingFact:
    name: str  # its clinical label
    description: str  # the data dictionary's description ("" when the label says it all)


@dataclass(frozen=True, slots=True)
class SignatureLine:
    """One electronic signature as a letter shows it (21 CFR 11.50): printed name, meaning,
    date and time, and the fingerprint of the key that made it."""

    name: str
    meaning: str
    time: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Letter:
    """Everything a letter shows, as plain text fields in a fixed order."""

    language: str
    trial_id: str
    trial_title: str  # in the letter's language
    trial_registered_title: str  # the registered title, when trial_title translates it
    trial_version: str
    candidate_id: str
    decision: str
    decision_text: str
    failed: tuple[str, ...]
    criteria: tuple[CriterionRow, ...]
    missing: tuple[MissingFact, ...]
    issued: str
    decided: str
    operator: str
    screener_version: str
    rules_file: str
    rules_hash: str
    trace_hash: str
    signatures: tuple[SignatureLine, ...] = ()
    screened: str = ""  # the day of the screening, in the site's zone
    investigator: str = ""  # the name printed on the signature line ("" = left to fill in)
    sources: tuple[SourceLine, ...] = ()
    not_assessed: tuple[str, ...] = ()  # ids of the criteria left unknown after an exclusion
    # How to render this letter again (`screener verify --letter`): its issue time in UTC,
    # ISO 8601, and the zone its times are shown in (`screener.i18n.zone_name`).
    stamp: str = ""


def _evidence(words: Words, name: str, entry: dict[str, Any], description: str,
              sources: dict[tuple[str, str], list[str]]) -> Evidence:
    corrections = tuple(words.tr("was {change}", change=words.correction(name, c))
                        for c in entry["corrections"])
    source, time = words.source(entry.get("source"), name), words.time(entry["time"])
    facts = sources.setdefault((source, time), [])
    if name not in facts:
        facts.append(name)
    return Evidence(name, words.label(name), description, words.value(name, entry.get("value")),
                    source, time, corrections, list(sources).index((source, time)) + 1)


def _mark(kind: str, outcome: str, not_assessed: bool) -> str:
    if not_assessed:
        return "–"
    if outcome == "unknown":
        return "?"
    return "✓" if (kind, outcome) in (("inclusion", "met"), ("exclusion", "not_met")) else "✗"


def build_letter(trace: Trace, trace_hash: str, issued: _dt.datetime,
                 words: Words | None = None) -> Letter:
    """The letter's content from a checked, decided trace.

    `trace_hash` is the sha256 of the trace file; `issued` the letter's (timezone-aware) time;
    `words` the language and time zone to write in (default: the trace's language, the
    system's zone). Returns a Letter; raises ValueError when the trace holds no decision or
    `issued` is naive.
    """
    decision = trace.decision
    if decision is None:
        raise ValueError(f"{trace.path}: no decision recorded; no letter can be written")
    if issued.tzinfo is None:
        raise ValueError("the letter's issue time must be timezone-aware")
    words = words or Words.of(trace)
    start = trace.start
    trial = start["trial"]
    descriptions = {name: spec.get("description", "") for name, spec in trial["facts"].items()}
    if words.language != "en":  # the data dictionary's descriptions are English
        descriptions = {name: words.labels.get(name, "") for name in descriptions}
    facts = final_facts(trace)
    missing = tuple(decision["missing"])
    excluded = decision["decision"] == "ineligible"
    sources: dict[tuple[str, str], list[str]] = {}
    rows = []
    for criterion in trial["criteria"]:
        outcome = decision["outcomes"].get(criterion["id"], "unknown")
        names = criterion["facts"]
        # once a criterion excludes, the rest is not asked: not a gap in the screening
        not_assessed = excluded and outcome == "unknown"
        rows.append(CriterionRow(
            id=criterion["id"], kind=kind_words(words, criterion["kind"]),
            title=words.title(criterion),
            protocol=criterion["protocol"], protocol_translation=words.protocol_translation(criterion),
            note=words.note(criterion), outcome=outcome,
            outcome_text=(words.tr("not assessed: the candidate was already excluded") if not_assessed
                          else outcome_words(words, criterion["kind"], outcome)),
            excludes=criterion["id"] in decision["failed"],
            evidence=tuple(_evidence(words, n, facts[n], descriptions.get(n, ""), sources)
                           for n in names if facts.get(n, {}).get("value") is not None),
            missing=(tuple(words.missing_label(n, facts.get(n, {}).get("value"),
                                               trial["facts"].get(n, {}).get("type", ""))
                           for n in names if n in missing)
                     if outcome == "unknown" and not not_assessed else ()),
            not_assessed=not_assessed, mark=_mark(criterion["kind"], outcome, not_assessed),
        ))
    id_fact = facts.get(trial.get("id_fact", ""), {}).get("value")
    candidate = start.get("candidate_id") or (str(id_fact) if id_fact is not None else "")
    title = words.trial_title or trial["title"]
    return Letter(
        language=words.language, trial_id=trial["id"], trial_title=title,
        trial_registered_title=trial["title"] if title != trial["title"] else "",
        trial_version=trial["version"],
        candidate_id=candidate or words.tr("(not given)"), decision=decision["decision"],
        decision_text=decision_words(words, decision["decision"]), failed=tuple(decision["failed"]),
        criteria=tuple(rows),
        missing=tuple(MissingFact(words.missing_label(n, facts.get(n, {}).get("value"),
                                                      trial["facts"].get(n, {}).get("type", "")),
                                  descriptions.get(n, "")
                                  if descriptions.get(n, "").rstrip(".") != words.label(n) else "")
                      if parse_ref(n) is None else MissingFact(describe_ref(n, words.label, words.tr), "")
                      for n in missing),
        issued=words.time(issued.isoformat()), decided=words.time(decision["time"]),
        stamp=f"issued={issued.astimezone(_dt.timezone.utc).isoformat()} "
              f"zone={zone_name(words.zone)}",
        operator=start.get("operator") or words.tr("(not given)"),
        screener_version=start["screener_version"], rules_file=trial["rules_file"],
        rules_hash=trial["rules_hash"], trace_hash=trace_hash,
        screened=words.day(start["time"]),
        # the investigator the screening named, else the operator (who then signs)
        investigator=str(start.get("investigator") or start.get("operator") or ""),
        sources=tuple(SourceLine(number, source, time, len(names))
                      for number, ((source, time), names) in enumerate(sources.items(), 1)),
        not_assessed=tuple(row.id for row in rows if row.not_assessed),
        signatures=tuple(
            SignatureLine(s["statement"]["signer"], words.meaning(s["statement"]["meaning"]),
                          words.time(s["statement"]["signed_at"]),
                          readable_fingerprint(s["statement"]["key"]))
            for s in trace.signatures),
    )


# Everything CommonMark could read as markup inside a table cell or a list item.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~#])")


def markdown_escape(text: Any) -> str:
    """`text` safe inside a Markdown table cell: markup characters backslash-escaped,
    line breaks turned into `<br>` (the only markup the filter itself adds)."""
    escaped = _MD_SPECIAL.sub(r"\\\1", str(text))
    lines = re.split(r"\r\n|\r|\n", escaped)
    return "<br>".join(line.replace("\t", " ") for line in lines)


def _shown(value: Any) -> Any:
    """Every value a letter shows, with the characters a reader's screen would obey rather
    than show (C1 controls, bidirectional overrides and isolates, DEL) written as visible
    escapes (`screener.safe.safe_text`): a candidate id holding U+202E must not read backwards.
    Line breaks and tabs stay; Markup stays Markup (the escapes are no HTML syntax)."""
    if isinstance(value, markupsafe.Markup):
        return markupsafe.Markup(safe_text(str(value), keep="\n\t\r"))
    if isinstance(value, str):
        return safe_text(value, keep="\n\t\r")
    return value


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja2 environment for the package's templates (HTML autoescaped, strict).

    Cached: compiling the templates costs more than rendering a letter."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("screener", "templates"),
        # select_autoescape looks only at the last suffix, so `.html.j2` is listed itself.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "html.j2"),
                                            default_for_string=False, default=False),
        undefined=jinja2.StrictUndefined,
        finalize=_shown,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = markdown_escape
    return env


def render_letter(letter: Letter, fmt: str) -> str:
    """The letter as text in `fmt` (`md` or `html`); raises ValueError for another format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown letter format {fmt!r}; expected one of {', '.join(FORMATS)}")

    def tr(message: str, **params: Any) -> str:
        text = translate(letter.language, message)
        if fmt == "html":  # the message escaped, and its parameters (unless already markup)
            safe = {name: markupsafe.escape(value) for name, value in params.items()}
            return markupsafe.Markup(str(markupsafe.escape(text)).format(**safe))
        return text.format(**params) if params else text

    def code(text: str) -> markupsafe.Markup:
        return markupsafe.Markup("<code>{}</code>").format(text)

    def bold(text: str) -> markupsafe.Markup:
        return markupsafe.Markup("<b>{}</b>").format(text)

    return environment().get_template(f"letter.{fmt}.j2").render(letter=letter, tr=tr, code=code,
                                                                  bold=bold)


def format_for(path: str) -> str:
    """`html` for a path ending in .html or .htm, otherwise `md`."""
    return "html" if path.lower().endswith((".html", ".htm")) else "md"
