"""Eligibility letters, rendered from a trace alone, as Markdown or printable HTML.

`build_letter` turns a checked trace into plain data (`Letter`); `render_letter` fills a
Jinja2 template from the package. Given the same trace, hashes and issue time, the output is
the same byte for byte. Presentation never decides: every outcome comes from the trace.
"""
from __future__ import annotations

import datetime as _dt
import functools
import re
from dataclasses import dataclass
from typing import Any

import jinja2

from screener.audit.keys import readable_fingerprint
from screener.audit.trace import Source, human_time
from screener.audit.chain import Trace, describe_correction, final_facts
from screener.values import show

FORMATS = ("md", "html")

DECISION_WORDS = {
    "eligible": "Eligible: every inclusion criterion is met and no exclusion criterion applies.",
    "ineligible": "Not eligible: at least one inclusion criterion is not met or one exclusion "
                  "criterion applies.",
    "undetermined": "Not yet determined: information needed to decide is missing.",
}
OUTCOME_WORDS = {
    ("inclusion", "met"): "met",
    ("inclusion", "not_met"): "not met (excludes the candidate)",
    ("exclusion", "met"): "applies (excludes the candidate)",
    ("exclusion", "not_met"): "does not apply",
}
UNKNOWN_WORDS = "unknown (information missing)"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One fact shown under a criterion: value as read by a person, source, time, history."""

    name: str
    description: str
    value: str
    source: str
    time: str
    corrections: tuple[str, ...]  # "changed from X to Y at T: reason", oldest first


@dataclass(frozen=True, slots=True)
class CriterionRow:
    """One criterion in the letter's table."""

    id: str
    kind: str
    title: str
    protocol: str
    note: str
    outcome: str  # met / not_met / unknown
    outcome_text: str
    excludes: bool
    evidence: tuple[Evidence, ...]
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MissingFact:
    name: str
    description: str


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

    trial_id: str
    trial_title: str
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


def _evidence(name: str, entry: dict[str, Any], description: str) -> Evidence:
    corrections = tuple(f"was {describe_correction(c)}" for c in entry["corrections"])
    return Evidence(name, description, show(entry.get("value")),
                    Source.from_json(entry.get("source", {"kind": "unspecified"})).describe(),
                    human_time(entry["time"]), corrections)


def build_letter(trace: Trace, trace_hash: str, issued: _dt.datetime) -> Letter:
    """The letter's content from a checked, decided trace.

    `trace_hash` is the sha256 of the trace file; `issued` the letter's (timezone-aware) time.
    Returns a Letter; raises ValueError when the trace holds no decision or `issued` is naive.
    """
    decision = trace.decision
    if decision is None:
        raise ValueError(f"{trace.path}: no decision recorded; no letter can be written")
    if issued.tzinfo is None:
        raise ValueError("the letter's issue time must be timezone-aware")
    start = trace.start
    trial = start["trial"]
    descriptions = {name: spec.get("description", "") for name, spec in trial["facts"].items()}
    facts = final_facts(trace)
    missing = tuple(decision["missing"])
    rows = []
    for criterion in trial["criteria"]:
        outcome = decision["outcomes"].get(criterion["id"], "unknown")
        names = criterion["facts"]
        rows.append(CriterionRow(
            id=criterion["id"], kind=criterion["kind"], title=criterion["title"],
            protocol=criterion["protocol"], note=criterion["note"], outcome=outcome,
            outcome_text=OUTCOME_WORDS.get((criterion["kind"], outcome), UNKNOWN_WORDS),
            excludes=criterion["id"] in decision["failed"],
            evidence=tuple(_evidence(n, facts[n], descriptions.get(n, ""))
                           for n in names if facts.get(n, {}).get("value") is not None),
            missing=tuple(n for n in names if n in missing) if outcome == "unknown" else (),
        ))
    id_fact = facts.get(trial.get("id_fact", ""), {}).get("value")
    candidate = start.get("candidate_id") or (str(id_fact) if id_fact is not None else "")
    return Letter(
        trial_id=trial["id"], trial_title=trial["title"], trial_version=trial["version"],
        candidate_id=candidate or "(not given)", decision=decision["decision"],
        decision_text=DECISION_WORDS[decision["decision"]], failed=tuple(decision["failed"]),
        criteria=tuple(rows),
        missing=tuple(MissingFact(n, descriptions.get(n, "")) for n in missing),
        issued=human_time(issued.isoformat()), decided=human_time(decision["time"]),
        operator=start.get("operator") or "(not given)",
        screener_version=start["screener_version"], rules_file=trial["rules_file"],
        rules_hash=trial["rules_hash"], trace_hash=trace_hash,
        signatures=tuple(
            SignatureLine(s["statement"]["signer"], s["statement"]["meaning"],
                          human_time(s["statement"]["signed_at"]),
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
    return environment().get_template(f"letter.{fmt}.j2").render(letter=letter)


def format_for(path: str) -> str:
    """`html` for a path ending in .html or .htm, otherwise `md`."""
    return "html" if path.lower().endswith((".html", ".htm")) else "md"
