"""`screener explain`: a screening's reasoning for a person, rendered from its trace alone.

Functions here return rich renderables; only the caller's Console writes. All text from the
trace goes in as `rich.text.Text`, never as markup, so a candidate id like `[bold]` stays text;
the console (`screener.safe`) shows the control characters it may hold escaped.
"""
from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from screener.audit.trace import Source, human_time
from screener.audit.chain import Trace, describe_correction, final_facts
from screener.i18n import translate
from screener.values import show

LANGUAGE = "en"  # verify and explain speak English until they take a language option


def tr(message: str, **params: Any) -> str:
    """The screener's own wording (an English message id) in the audit commands' language."""
    return translate(LANGUAGE, message, **params)

OUTCOME_STYLES = {"met": "green", "not_met": "red", "unknown": "yellow"}
DECISION_STYLES = {"eligible": "bold green", "ineligible": "bold red",
                   "undetermined": "bold yellow"}


def _outcome_words(outcome: str, excludes: bool) -> str:
    words = {"met": "met", "not_met": "not met", "unknown": "unknown"}[outcome]
    return f"{words} (excludes)" if excludes else words


def _fact_node(parent: Tree, name: str, entry: dict[str, Any] | None, unit: str = "") -> None:
    if entry is None or entry.get("value") is None:
        parent.add(Text.assemble((name, "bold"), " = ", ("unknown", "yellow")))
        return
    origin = Source.from_json(entry.get("source", {"kind": "unspecified"}))
    source = origin.describe()
    value = show(entry["value"])
    if origin.given:  # converted on input: "1.5 mg/dL = 132.6 umol/L"
        value = f"{origin.given} = {value}{f' {unit}' if unit else ''}"
    label = Text.assemble((name, "bold"), " = ", value, "  ",
                          (f"{source}, {human_time(entry['time'])}", "dim"))
    if entry["corrections"]:
        label.append("  corrected", style="bold magenta")
    node = parent.add(label)
    for change in entry["corrections"]:
        node.add(Text(f"was {describe_correction(change)}", style="magenta"))


def criteria_tree(trace: Trace) -> Tree:
    """The criteria as a tree: inclusion and exclusion branches, each criterion with its
    outcome, the rules that fired for it, and the facts it reads with source and time."""
    start = trace.start
    decision = trace.decision or {"outcomes": {}, "failed": [], "missing": []}
    facts = final_facts(trace)
    firings: dict[str, list[dict[str, Any]]] = {}
    for record in trace.of_type("firing"):
        if record.get("criterion"):
            firings.setdefault(record["criterion"], []).append(record)
    root = Tree(Text(f"{start['trial']['id']}: {start['trial']['title']}", style="bold"))
    branches = {kind: root.add(Text(f"{kind.capitalize()} criteria", style="bold"))
                for kind in ("inclusion", "exclusion")}
    for criterion in start["trial"]["criteria"]:
        outcome = decision["outcomes"].get(criterion["id"], "unknown")
        excludes = criterion["id"] in decision["failed"]
        label = Text.assemble(
            (criterion["id"], "bold"), f" {criterion['title']}: ",
            (_outcome_words(outcome, excludes), OUTCOME_STYLES[outcome]))
        node = branches.get(criterion["kind"], root).add(label)
        node.add(Text(f"protocol: {criterion['protocol']}", style="italic"))
        if criterion["note"]:
            node.add(Text(f"note: {criterion['note']}", style="italic"))
        for firing in firings.get(criterion["id"], []):
            read = ", ".join(f"{k} = {show(v)}" for k, v in sorted(firing["facts"].items()))
            node.add(Text(f"rule {firing['rule']} fired on {read or 'no facts'}", style="dim"))
        for name in criterion["facts"]:
            unit = start["trial"].get("facts", {}).get(name, {}).get("unit", "")
            _fact_node(node, name, facts.get(name), unit)
    return root


def explanation(trace: Trace) -> RenderableType:
    """The whole explanation: header (trial, candidate, operator, decision), criteria tree,
    missing facts, and a warning when the trace is unfinished."""
    start = trace.start
    decision = trace.decision
    parts: list[RenderableType] = []
    if not trace.sealed:
        parts.append(Text("INCOMPLETE TRACE: no end record; the screening did not finish or "
                          "the file was cut short.", style="bold red"))
    header = Text()
    header.append(f"Candidate: {start.get('candidate_id') or '(not given)'}\n")
    header.append(f"Operator: {start.get('operator') or '(not given)'}\n")
    header.append(f"Started: {human_time(start['time'])} ({start['mode']}, screener "
                  f"{start['screener_version']})\n")
    for record in trace.records:  # a dialog left and taken up again
        if record["type"] == "pause":
            header.append(tr("Paused: {time} ({reason})", time=human_time(record["time"]),
                             reason=record.get("reason")) + "\n")
        elif record["type"] == "resume":
            header.append(tr("Resumed: {time} by {operator}", time=human_time(record["time"]),
                             operator=record.get("operator") or "(not given)") + "\n")
    header.append(f"Rules: {start['trial']['rules_file']} sha256 {start['trial']['rules_hash']}\n")
    header.append("Decision: ")
    if decision is None:
        header.append("none recorded", style="bold yellow")
    else:
        header.append(decision["decision"], style=DECISION_STYLES[decision["decision"]])
        header.append(f" at {human_time(decision['time'])}")
        if decision["failed"]:
            header.append(f" (failed: {', '.join(decision['failed'])})")
    parts += [header, criteria_tree(trace)]
    if decision is not None and decision["missing"]:
        parts.append(Text("Missing facts: " + ", ".join(decision["missing"]), style="yellow"))
    return Group(*parts)
