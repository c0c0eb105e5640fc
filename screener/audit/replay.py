"""Replay a trace: find the rules file it names, rerun its facts, compare every record.

Every record a letter or `explain` shows is checked: the trial description in the start
record (protocol texts, notes, conditions, data dictionary) against the rules file found by
hash; the derived-fact records, every firing record and the decision against a fresh run of
the engine on the input facts. Each difference names the record's line.

Kept apart from `screener.audit.trace` (which only reads and writes records) because replay is the
one part of auditing that needs the rules loader and the engine.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from screener.i18n import Message, tr
from screener.errors import InvalidValue, ScreenerError
from screener.paths import read_regular, regular_files
from screener.model import FactValue, Result, Trial
from screener.audit.trace import Source, to_json_value
from screener.audit.chain import Trace, final_facts
from screener.values import coerce

RULES_SUFFIXES = (".yaml", ".yml")


class ReplayError(ScreenerError):
    """A trace cannot be replayed: no matching rules file, no decision, or unreadable facts."""

    code = "replay"

    def __init__(self, path: str, message: str | Message):
        self.path = path
        self.message = str(message)  # English
        self._message = message if isinstance(message, Message) else None
        super().__init__(f"{path}: {message}")

    def in_language(self, language: str) -> str:
        """The error as `path: message`, the message in `language` where it has one."""
        text = self._message.in_language(language) if self._message else self.message
        return f"{self.path}: {text}"


@dataclass(frozen=True, slots=True)
class Difference:
    """One part of the decision that came out differently on replay."""

    field: str  # decision / outcomes.<criterion> / failed / missing / derived.<fact> / ...
    recorded: Any
    replayed: Any
    line: int = 0  # 1-based line of the record that differs; 0 when not one record's

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.field}: recorded {self.recorded!r}, replayed {self.replayed!r}"


@dataclass(frozen=True, slots=True)
class Replay:
    """The outcome of replaying a trace: the rules used, the new result, what differs."""

    rules_path: str
    result: Result
    differences: tuple[Difference, ...]
    decision_line: int  # 1-based line of the recorded decision

    @property
    def matches(self) -> bool:
        return not self.differences


def find_rules(content_hash: str, rules_dirs: Iterable[str | os.PathLike[str]]) -> Path:
    """The first rules file, in the directories `rules_dirs` in their order, whose bytes hash
    to `content_hash`.

    Returns its path; raises ReplayError when none matches.
    """
    directories = [Path(directory) for directory in rules_dirs]
    looked = 0
    for directory in directories:
        candidates = regular_files(p for p in directory.iterdir() if p.suffix in RULES_SUFFIXES) \
            if directory.is_dir() else []
        looked += len(candidates)
        for path in candidates:
            try:
                data = read_regular(path)
            except OSError:
                continue  # swapped or removed since the listing: not the rules sought
            if hashlib.sha256(data).hexdigest() == content_hash:
                return path
    raise ReplayError(", ".join(os.fspath(d) for d in directories) or "no directory",
                      tr("no rules file with hash {hash} (looked at {count} files); name one "
                         "with --rules or its directory with --rules-dir", hash=content_hash,
                         count=looked))


def replay_facts(trace: Trace, trial: Trial) -> dict[str, FactValue]:
    """The input facts as last answered (corrections applied), typed for `trial`.

    Derived facts are left out: the engine derives them again. Raises ReplayError when a fact
    is unknown to the rules or its value no longer fits its type.
    """
    facts: dict[str, FactValue] = {}
    for name, entry in sorted(final_facts(trace).items()):
        if entry.get("source", {}).get("kind") == "derived" or name == trial.id_fact:
            continue
        spec = trial.facts.get(name)
        if spec is None:
            raise ReplayError(trace.path, tr("fact {fact} is not in the rules file", fact=repr(name)))
        try:
            value = coerce(spec, entry["value"])
        except InvalidValue as error:
            raise ReplayError(trace.path, f"fact {error}") from None
        if value is not None:
            facts[name] = value
    return facts


def replay(trace: Trace, rules_path: str | os.PathLike[str]) -> Replay:
    """Load `rules_path`, evaluate the trace's facts, and compare with the recorded decision.

    Returns a Replay (check `.matches`); raises ReplayError when the rules file's hash is not
    the one the trace names or the trace has no decision, and RulesError for broken rules.
    """
    from screener.engine import Screener  # the engine is only needed when replaying
    from screener.rules.check import load_trial

    trial = load_trial(rules_path)
    recorded_hash = trace.start["trial"]["rules_hash"]
    if trial.content_hash != recorded_hash:
        raise ReplayError(os.fspath(rules_path),
                          tr("rules hash {hash} is not the trace's {recorded}",
                             hash=trial.content_hash, recorded=recorded_hash))
    decision = trace.decision
    if decision is None:
        raise ReplayError(trace.path, tr("no decision recorded: the screening did not finish"))
    result = Screener(trial).evaluate(replay_facts(trace, trial))
    differences = [*compare_start(trace, trial), *compare_derived(trace, result),
                   *compare_firings(trace, result),
                   *(replace(d, line=decision["seq"] + 1) for d in compare(decision, result))]
    return Replay(os.fspath(rules_path), result, tuple(differences), decision["seq"] + 1)


def compare_start(trace: Trace, trial: Trial) -> list[Difference]:
    """What the start record says about the trial (titles, protocol texts, notes, conditions,
    the data dictionary) against the rules file itself: a letter prints these, so they must
    be the rules file's words."""
    from screener.audit.trace import trial_header

    recorded, source = trace.start["trial"], trial_header(trial)
    out: list[Difference] = []
    for key in ("id", "title", "version", "id_fact", "facts"):
        if recorded.get(key) != source[key]:
            out.append(Difference(f"trial.{key}", recorded.get(key), source[key], 1))
    was = {c.get("id"): c for c in recorded.get("criteria", [])}
    now = {c["id"]: c for c in source["criteria"]}
    if list(was) != list(now):
        out.append(Difference("trial.criteria", list(was), list(now), 1))
    for criterion in now:
        for key, value in now[criterion].items():
            if criterion in was and was[criterion].get(key) != value:
                out.append(Difference(f"criterion {criterion}.{key}", was[criterion].get(key),
                                      value, 1))
    return out


def compare_derived(trace: Trace, result: Result) -> list[Difference]:
    """The derived-fact records against the facts the rules derive again, with their sources."""
    recorded = [r for r in trace.of_type("fact") if r["source"].get("kind") == "derived"]
    expected = [{"fact": name, "value": to_json_value(value),
                 "source": Source.derived(firing.rule, firing.facts).to_json()}
                for firing in result.firings for name, value in firing.derived.items()]
    out: list[Difference] = []
    for n in range(max(len(recorded), len(expected))):
        record = recorded[n] if n < len(recorded) else None
        want = expected[n] if n < len(expected) else None
        line = record["seq"] + 1 if record else 0
        if record is None or want is None:
            out.append(Difference("derived fact", record and record["fact"],
                                  want and want["fact"], line))
            continue
        for key in ("fact", "value", "source"):
            if record.get(key) != to_json_value(want[key]):
                out.append(Difference(f"derived fact {want['fact']}: {key}", record.get(key),
                                      want[key], line))
    return out


def compare_firings(trace: Trace, result: Result) -> list[Difference]:
    """Each firing record against the rule the engine fires again, in order, field by field."""
    recorded = trace.of_type("firing")
    out: list[Difference] = []
    for n in range(max(len(recorded), len(result.firings))):
        record = recorded[n] if n < len(recorded) else None
        firing = result.firings[n] if n < len(result.firings) else None
        line = record["seq"] + 1 if record else 0
        if record is None or firing is None:
            out.append(Difference("firing", record and record["rule"],
                                  firing and firing.rule, line))
            continue
        for key in ("rule", "criterion", "outcome", "facts", "derived"):
            want = to_json_value(getattr(firing, key))
            if record.get(key) != want:
                out.append(Difference(f"firing {record.get('rule')}: {key}", record.get(key), want,
                                      line))
    return out


def compare(recorded: dict[str, Any], result: Result) -> list[Difference]:
    """Every difference between a recorded decision record and a fresh Result."""
    out: list[Difference] = []
    if recorded["decision"] != result.decision:
        out.append(Difference("decision", recorded["decision"], result.decision))
    for criterion in sorted(set(recorded["outcomes"]) | set(result.outcomes)):
        was, now = recorded["outcomes"].get(criterion), result.outcomes.get(criterion)
        if was != now:
            out.append(Difference(f"outcomes.{criterion}", was, now))
    for name in ("failed", "missing"):
        if list(recorded[name]) != list(getattr(result, name)):
            out.append(Difference(name, recorded[name], list(getattr(result, name))))
    if list(recorded.get("warnings", [])) != list(result.warnings):
        out.append(Difference("warnings", recorded.get("warnings", []), list(result.warnings)))
    computed = to_json_value(result.computed)
    for fact in sorted(set(recorded.get("computed", {})) | set(computed)):
        if recorded.get("computed", {}).get(fact) != computed.get(fact):
            out.append(Difference(f"computed.{fact}", recorded.get("computed", {}).get(fact),
                                  computed.get(fact)))
    derived = to_json_value(result.derived)
    for fact in sorted(set(recorded["derived"]) | set(derived)):
        if recorded["derived"].get(fact) != derived.get(fact):
            out.append(Difference(f"derived.{fact}", recorded["derived"].get(fact),
                                  derived.get(fact)))
    return out
