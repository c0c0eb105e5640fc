"""Replay a trace: find the rules file it names, rerun its facts, compare the decision.

Kept apart from `screener.audit.trace` (which only reads and writes records) because replay is the
one part of auditing that needs the rules loader and the engine.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from screener.i18n import Message, tr
from screener.errors import InvalidValue, ScreenerError
from screener.model import FactValue, Result, Trial
from screener.audit.trace import to_json_value
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

    field: str  # decision / outcomes.<criterion> / failed / missing / derived.<fact>
    recorded: Any
    replayed: Any

    def __str__(self) -> str:
        return f"{self.field}: recorded {self.recorded!r}, replayed {self.replayed!r}"


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


def find_rules(content_hash: str, rules_dir: str | os.PathLike[str]) -> Path:
    """The rules file in `rules_dir` whose bytes hash to `content_hash`.

    Returns its path; raises ReplayError when none matches.
    """
    directory = Path(rules_dir)
    candidates = sorted(p for p in directory.iterdir() if p.suffix in RULES_SUFFIXES) \
        if directory.is_dir() else []
    for path in candidates:
        if hashlib.sha256(path.read_bytes()).hexdigest() == content_hash:
            return path
    raise ReplayError(os.fspath(directory),
                      tr("no rules file with hash {hash} (looked at {count} files); name one "
                         "with --rules", hash=content_hash, count=len(candidates)))


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
    return Replay(os.fspath(rules_path), result, tuple(compare(decision, result)),
                  decision["seq"] + 1)


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
    derived = to_json_value(result.derived)
    for fact in sorted(set(recorded["derived"]) | set(derived)):
        if recorded["derived"].get(fact) != derived.get(fact):
            out.append(Difference(f"derived.{fact}", recorded["derived"].get(fact),
                                  derived.get(fact)))
    return out
