"""`screener explain`: a screening's reasoning for a person, rendered from its trace alone.

Functions here return rich renderables; only the caller's Console writes. All text from the
trace goes in as `rich.text.Text`, never as markup, so a candidate id like `[bold]` stays text;
the console (`screener.safe`) shows the control characters it may hold escaped.
Everything is worded through `Words`: the screening's language recorded in the trace (or the
one asked for), its wording of the trial, times in the site's zone.
"""
from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from screener.audit.chain import Trace, final_facts
from screener.audit.keys import readable_fingerprint
from screener.audit.trace import Source
from screener.audit.words import Words
from screener.rules.collect import describe_ref, parse_ref


OUTCOME_STYLES = {"met": "green", "not_met": "red", "unknown": "yellow"}
DECISION_STYLES = {"eligible": "bold green", "ineligible": "bold red",
                   "undetermined": "bold yellow"}


def _outcome_words(words: Words, outcome: str, excludes: bool) -> str:
    text = {"met": words.tr("met"), "not_met": words.tr("not met"),
            "unknown": words.tr("unknown")}[outcome]
    return words.tr("{outcome} (excludes)", outcome=text) if excludes else text


def decision_word(words: Words, decision: str) -> str:
    """`eligible`, `ineligible` or `undetermined` in the language of `words`."""
    return {"eligible": words.tr("eligible"), "ineligible": words.tr("ineligible"),
            "undetermined": words.tr("undetermined")}[decision]


def _name(words: Words, fact: str) -> str:
    """A fact by its clinical label (`Words.label`)."""
    return words.label(fact)


def _missing(words: Words, fact: str, recorded: dict[str, Any], kinds: dict[str, str]) -> str:
    """A missing fact by its label, saying what is needed when it was given as a range."""
    return words.missing_label(fact, (recorded.get(fact) or {}).get("value"), kinds.get(fact, ""))


def _fact_node(words: Words, parent: Tree, name: str, entry: dict[str, Any] | None) -> None:
    if entry is None or entry.get("value") is None:
        parent.add(Text.assemble((_name(words, name), "bold"), " = ",
                                 (words.tr("unknown"), "yellow")))
        return
    origin = Source.from_json(entry.get("source", {"kind": "unspecified"}))
    value = words.value(name, entry["value"])
    if origin.given:  # converted on input: "1.5 mg/dL = 132.6 µmol/L"
        value = f"{origin.given} = {value}"
    label = Text.assemble((_name(words, name), "bold"), " = ", value, "  ",
                          (f"{words.source(entry.get('source'), name)}, {words.time(entry['time'])}",
                           "dim"))
    if entry["corrections"]:
        label.append(f"  {words.tr('corrected')}", style="bold magenta")
    node = parent.add(label)
    for change in entry["corrections"]:
        node.add(Text(words.tr("was {change}", change=words.correction(name, change)),
                      style="magenta"))


def criteria_tree(trace: Trace, words: Words | None = None) -> Tree:
    """The criteria as a tree: inclusion and exclusion branches, each criterion with its
    outcome, the rules that fired for it, and the facts it reads with source and time."""
    words = words or Words.of(trace)
    start = trace.start
    decision = trace.decision or {"outcomes": {}, "failed": [], "missing": []}
    facts = final_facts(trace)
    firings: dict[str, list[dict[str, Any]]] = {}
    for record in trace.of_type("firing"):
        if record.get("criterion"):
            firings.setdefault(record["criterion"], []).append(record)
    title = words.trial_title or start["trial"]["title"]
    root = Tree(Text(f"{start['trial']['id']}: {title}", style="bold"))
    branches = {"inclusion": root.add(Text(words.tr("Inclusion criteria"), style="bold")),
                "exclusion": root.add(Text(words.tr("Exclusion criteria"), style="bold"))}
    for criterion in start["trial"]["criteria"]:
        outcome = decision["outcomes"].get(criterion["id"], "unknown")
        excludes = criterion["id"] in decision["failed"]
        said = _outcome_words(words, outcome, excludes)
        label = Text(words.tr("{criterion}: {outcome}",
                              criterion=f"{criterion['id']} {words.title(criterion)}", outcome=said))
        label.stylize("bold", 0, len(criterion["id"]))
        label.stylize(OUTCOME_STYLES[outcome], len(label) - len(said))
        node = branches.get(criterion["kind"], root).add(label)
        node.add(Text(words.tr("protocol: {text}", text=criterion["protocol"]), style="italic"))
        translation = words.protocol_translation(criterion)
        if translation:
            node.add(Text(words.tr("translation: {text}", text=translation), style="italic"))
        note = words.note(criterion)
        if note:
            node.add(Text(words.tr("note: {text}", text=note), style="italic"))
        known = start["trial"].get("facts", {})
        for firing in firings.get(criterion["id"], []):
            # the rule's id and the terms the compiler made up are the trace's, not a reader's
            read = ", ".join(f"{_name(words, k)} = {words.value(k, v)}"
                             for k, v in sorted(firing["facts"].items()) if k in known)
            if read:
                node.add(Text(words.tr("decided on {facts}", facts=read), style="dim"))
        for name in criterion["facts"]:
            _fact_node(words, node, name, facts.get(name))
    return root


def explanation(trace: Trace, words: Words | None = None) -> RenderableType:
    """The whole explanation: header (trial, candidate, operator, decision), criteria tree,
    missing facts, and a warning when the trace is unfinished. In the trace's language unless
    `words` says otherwise."""
    words = words or Words.of(trace)
    start = trace.start
    decision = trace.decision
    parts: list[RenderableType] = []
    if not trace.sealed:
        parts.append(Text(words.tr("INCOMPLETE TRACE: no end record; the screening did not "
                                   "finish or the file was cut short."), style="bold red"))
    header = Text()
    header.append(words.tr("Candidate: {candidate}", candidate=start.get("candidate_id")
                           or words.tr("(not given)")) + "\n")
    header.append(words.tr("Operator: {operator}", operator=start.get("operator")
                           or words.tr("(not given)")) + "\n")
    if start.get("investigator"):
        header.append(words.tr("Investigator: {investigator}", investigator=start["investigator"]) + "\n")
    mode = words.tr("dialog") if start["mode"] == "dialog" else words.tr("batch")
    header.append(words.tr("Started: {time} ({mode}, screener {version})",
                           time=words.time(start["time"]), mode=mode,
                           version=start["screener_version"]) + "\n")
    for link in start.get("continues") or ():  # the earlier trace this one takes up
        if isinstance(link, dict):
            header.append(words.tr("Continues: {path} ({count} records, last hash {hash}...)",
                                   path=str(link.get("path")), count=link.get("records"),
                                   hash=str(link.get("last_hash", ""))[:16]) + "\n")
    for record in trace.records:  # a dialog left and taken up again
        if record["type"] == "pause":
            header.append(words.tr("Paused: {time} ({reason})", time=words.time(record["time"]),
                                   reason=words.pause_reason(record.get("reason"))) + "\n")
        elif record["type"] == "resume" and record.get("reason"):
            header.append(words.tr("Reopened: {time} by {operator}, because: {reason}",
                                   time=words.time(record["time"]), reason=str(record["reason"]),
                                   operator=record.get("operator") or words.tr("(not given)"))
                          + "\n")
        elif record["type"] == "resume":
            header.append(words.tr("Resumed: {time} by {operator}",
                                   time=words.time(record["time"]),
                                   operator=record.get("operator") or words.tr("(not given)"))
                          + "\n")
    header.append(words.tr("Rules: {file} sha256 {hash}", file=start["trial"]["rules_file"],
                           hash=start["trial"]["rules_hash"]) + "\n")
    label = words.tr("Decision:")
    header.append(label if label.endswith("：") else f"{label} ")
    if decision is None:
        header.append(words.tr("none recorded"), style="bold yellow")
    else:
        header.append(decision_word(words, decision["decision"]),
                      style=DECISION_STYLES[decision["decision"]])
        header.append(" " + words.tr("at {time}", time=words.time(decision["time"])))
        if decision["failed"]:
            header.append(" " + words.tr("(failed: {criteria})",
                                         criteria=", ".join(decision["failed"])))
    parts += [header, criteria_tree(trace, words)]
    if decision is not None and decision["missing"]:
        recorded = final_facts(trace)
        kinds = {name: spec.get("type", "") for name, spec in trace.start["trial"]["facts"].items()}
        parts.append(Text(words.tr("Missing facts: {facts}", facts=", ".join(
            _missing(words, name, recorded, kinds) if parse_ref(name) is None
            else describe_ref(name, words.label, words.tr)
            for name in decision["missing"])), style="yellow"))
    if decision is not None and decision.get("warnings"):
        # reported measurements far from their computation (docs/rules-language.md)
        parts.append(Text(words.tr("Reported values used: {warnings}",
                                   warnings="; ".join(decision["warnings"])), style="yellow"))
    for record in trace.signatures:  # as recorded; `screener verify` checks them
        statement = record.get("statement", {})
        parts.append(Text(words.tr(
            "Signed by {signer} for {meaning} at {time}; key {fingerprint}",
            signer=statement.get("signer"), meaning=words.meaning(statement.get("meaning")),
            time=words.time(statement["signed_at"]) if statement.get("signed_at") else "?",
            fingerprint=readable_fingerprint(str(statement.get("key", ""))))))
    return Group(*parts)
