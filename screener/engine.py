"""The only module that touches durable-rules. It offers `Screener.evaluate(facts) -> Result`.

durable-rules 2.0.28 is driven here through its C core (`durable_rules_engine`), the same calls
its `engine.Host` makes, without the parts of the Python wrapper that are unsafe for us:
- no `Host`, so none of its background timer threads that segfault beside ours;
- actions are not Python callbacks: each fired rule comes back as a message we handle here,
  so no action can be lost to the two-parameter "async" trap or have its exception swallowed;
- every session is opened with a marker fact that a rule consumes, so `delete_state` never
  meets a session that completed no action (segfault);
- one live session per ruleset, kept from one candidate to the next: each candidate's
  snapshot is retracted once decided (a candidate whose facts contradict each other too, at
  the seal after the derivations: no action raises, the contradictions are collected), and
  a durable-rules failure has the session deleted (a fresh one is opened for the next).
  Far from the 1,024-session ceiling, and no two live sessions can collide on the 32-bit
  sid hash. Creating a session clears frame tables for every node of the network: it cost
  about as much as deciding the candidate;
- sids are generated (`s<n>`), never taken from input, so no quote or backslash reaches them;
- facts carry an explicit `id` and are asserted one at a time, each result code checked;
- values are validated and encoded before they reach the engine (no mixed types, no floats,
  no exponent notation), and conditions never compare two facts or divide;
- one ruleset per trial, created once per process and kept: a site's portfolio of 20 trials
  is 20 rulesets of about 100 rules (about 1 MB each; benchmarks/portfolio.py). Trials are
  never merged into one ruleset: durable-rules refuses more than about 4,000 rules in one
  (error 106) and spins forever in `create_ruleset` when one node of its network has more
  than 512 children, a count that merged trials would pass where each alone stays far below.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import re
from decimal import Decimal
from typing import Any, Iterable, Mapping

import durable_rules_engine as _dre

from screener.rules.compile import (
    DONE_PREFIX, FIELD_PREFIX, FINAL, KIND, OPEN, SEALED, SNAPSHOT, Part, compile_rulesets, encoder,
    engine_places, lower_criteria,
)
from screener.rules.compile.names import renamed, short_names
from screener.rules.compile.rules import criteria_of, enabling_fields, final_fields, passing_outcome
from screener.rules import cache, formulas
from screener.rules import ranged as ranged_fields
from screener.rules.ranged import HIGH_PREFIX, LOW_PREFIX
from screener.rules.collect import to_collect
from screener.rules.evaluate import NEVER, Evaluator, Failure
from screener.rules.terms import NEVER_PREFIX, Term, compute
from screener.errors import (
    ConflictError, EngineError, ImpossibleFacts, InvalidValue, RuleProblem, RulesError, reported_warning,
)
from screener.rules.functions import FUNCTIONS, DerivationError, banded_score_classes, banded_score_settled
from screener.model import Criterion, FactValue, Firing, Interval, Result, Special, Trial

_MESSAGE = re.compile(r'\{"([^"]+)":\{"m":\{"sid":\s*"[^"]*",\s*"id":\s*"([^"]*)"')
# Facts go to the engine as compact JSON text: less for its parser and for every message
# that echoes the fact. Values are never floats (see `encode`), so no exponent notation.
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _same(value: Any) -> Any:
    return value


_encode_text = json.encoder.encode_basestring  # as _to_json writes a text (ensure_ascii off)


def _scalar(value: Any) -> str:
    """The JSON text of an encoded value (see `encode`), as _to_json writes it."""
    kind = value.__class__
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        return _encode_text(value)
    if kind is bool:
        return "true" if value else "false"
    return _to_json(value)


# the values of one fact whose text `_encode` remembers: yes/no, choices, and the few values
# of a score or a lab test; not every date of birth
_REMEMBERED = 512
# the kinds of derived values whose fit is remembered: each equal only to values of its own
# kind that are checked alike (a Decimal 1.0 equals 1, so numbers of that kind are not kept)
_EXACTLY_KEPT = frozenset({bool, int, str, dt.date})


class _OneValue:
    """How `Screener._encode` writes a ranged fact (screener.rules.ranged) holding one value,
    as nearly every one does: both ends are that value encoded, written once, without
    `_encode_one`'s dispatch on the fact; the texts of the values met so far (up to
    `_REMEMBERED`) kept. A range or `never` goes through `_encode_one`."""

    __slots__ = ("low", "high", "scaled", "remembered")

    def __init__(self, low: str | None, high: str | None, scaled: Any):
        self.low, self.high, self.scaled = low, high, scaled
        self.remembered: dict[Any, str] = {}

    def write(self, value: Any) -> str:
        scaled = self.scaled(value)
        text = int.__repr__(scaled) if scaled.__class__ is int else _scalar(scaled)
        low, high = self.low, self.high
        if low is None:
            piece = "" if high is None else high + text
        else:
            piece = low + text if high is None else f"{low}{text},{high}{text}"
        if piece and len(self.remembered) < _REMEMBERED:
            self.remembered[value] = piece
        return piece


def _least(piece: str) -> str:
    """The field of a ranged fact's least end alone, of the JSON text of both its ends (least
    first, as `_OneValue.write` and `Screener._encode_one` write them; their values are
    whole numbers, without a comma)."""
    return piece.partition(",")[0]


def _start(name: str | None) -> str | None:
    """The start of the JSON text of a field named `name`; None for None."""
    return None if name is None else f'"{name}":'


def _fired_on(message: str, echo: str) -> str:
    """The rule of a message that does not go on with `echo` as the current snapshot's
    messages do (see `Screener._snapshot`): raises EngineError for a stale snapshot or a
    message not in the expected form."""
    match = _MESSAGE.match(message)
    if match is None:
        raise EngineError(f"unexpected durable-rules message {message[:80]!r}")
    if not echo.endswith(f'"id":"{match.group(2)}"'):
        raise EngineError(f"rule {match.group(1)} fired on a stale snapshot")
    return match.group(1)


def _session(handle: int) -> str:
    """The sid of the ruleset's live session, opened when there is none.

    A session is opened with a marker fact that a do-nothing rule consumes, so it has
    completed an action before it can ever be deleted (`delete_state` segfaults otherwise).
    Creating a session is the engine's costliest step (it clears frame tables for every
    node of the network, about as long as deciding a candidate), so the session is kept
    and each candidate's snapshot is retracted once decided; the session then holds the
    marker fact alone again, and no rule reads the marker with a snapshot.
    """
    sid = _sessions.get(handle)
    if sid is None:
        sid = f"s{next(_sids)}"
        code, state = _dre.assert_fact(handle, _to_json({"sid": sid, "id": "open", KIND: OPEN}))
        if code != 0:
            raise EngineError(f"durable-rules error {code} opening a session")
        started = _dre.start_action_for_state(handle, state)
        message = started[1] if started else None
        while message:
            if _MESSAGE.match(message) is None:
                raise EngineError(f"unexpected durable-rules message {message[:80]!r}")
            message = _dre.complete_and_start_action(handle, state)
        _sessions[handle] = sid
    return sid


def _tidy(handle: int, state: int, retraction: str) -> bool:
    """Retract the snapshot of a candidate stopped inside an action (the seal), by the text
    that retracts it (`Screener._snapshot`), and finish that action; returns whether the
    session is left as before the candidate (no action left to run), False when it must be
    deleted instead."""
    try:
        code, _ = _dre.retract_fact(handle, retraction)
        if code != 0:
            return False
        return not _dre.complete_and_start_action(handle, state)
    except _dre.error:
        return False


def _end_session(handle: int) -> None:
    """Delete the ruleset's live session (after a candidate it may hold parts of)."""
    sid = _sessions.pop(handle, None)
    if sid is not None:
        _dre.delete_state(handle, sid)


def _trial_key(trial: Trial) -> tuple[str] | None:
    """What a trial's compiled rulesets are kept under: a hash of the whole Trial (two trials
    of equal text compile alike), None when it cannot be written down."""
    found = cache.digest(trial)
    return None if found is None else (found,)


_NOT_HANDLED = 1
_OBSERVED = 2
_handles: dict[str, int] = {}  # ruleset name -> C handle; rulesets live for the process
_sessions: dict[int, str] = {}  # ruleset handle -> sid of its one live session
_sids = itertools.count()  # sids are made here, never taken from input
_snapshot_ids = itertools.count(1)  # each snapshot fact's id, unique in the process


def _ruleset(trial: Trial, name: str, definition: dict[str, Any]) -> int:
    """Create the named ruleset once per process (names are global in the C core).

    Raises RulesError pointing at the criterion or derivation whose rule the engine refused.
    """
    if name not in _handles:
        try:
            _handles[name] = _dre.create_ruleset(name, json.dumps(definition, ensure_ascii=False))
        except _dre.error as exc:
            raise _refused(trial, name, definition, exc) from exc
    return _handles[name]


def _refused(trial: Trial, name: str, definition: dict[str, Any], exc: Exception) -> RulesError:
    """Find which rules durable-rules refuses, one by one, and name them with their source."""
    problems: list[RuleProblem] = []
    spans = {c.id: c.span for c in trial.criteria} | {f"derive.{d.id}": d.span for d in trial.derivations}
    for rule, body in definition.items():
        try:
            _dre.create_ruleset(f"{name}-probe-{rule}", json.dumps({rule: body}, ensure_ascii=False))
        except _dre.error as single:
            owner = rule if rule in spans else rule.partition(".")[0]
            span = spans.get(owner) or next(iter(spans.values()))
            problems.append(RuleProblem(
                span.path, span.line, span.column, "engine-refused",
                f"durable-rules refuses rule {rule} ({single}); split the condition into "
                "smaller criteria or fewer alternatives",
            ))
    if not problems:
        problems.append(RuleProblem(trial.path, 1, 1, "engine-refused", str(exc)))
    return RulesError(problems)


# What the action of a fired rule does, decided once per rule name when the ruleset is made
# (see `_action_of`), so a firing costs one dictionary look-up.
_DERIVE, _TERM, _SEAL, _MISSING, _PART, _CRITERION, _SEEN = range(7)
Action = tuple[Any, ...]


def _action_of(rule: str, parts: dict[str, Part], criteria: dict[str, Criterion]) -> Action | None:
    """The action of rule `rule` by its name (see compile_rulesets for the names); None for
    the opener, which fires only on the opening fact."""
    head, _, rest = rule.partition(".")
    if head == "derive":
        return (_DERIVE, rest.partition(".")[0])
    if head == "term":
        return (_TERM, rest.partition(".")[0])
    if head == "seal":
        return (_SEAL, rule == "seal")  # the seal after derivations, or the one after parts
    if rule == "seen":
        return (_SEEN,)
    if rest.startswith("missing."):
        # `<criterion>.missing.<fact>[.<n>]`: one rule per way the fact is read
        return (_MISSING, rest.split(".")[1])
    name, _, outcome = rule.rpartition(".")
    if name in parts:
        return (_PART, name, outcome, parts[name].facts, head)
    if head in criteria:
        return (_CRITERION, head, rest, criteria[head].facts)
    return None


# the sets of parts decided whose sealed snapshots' reads a ruleset keeps (`sealed_reads`)
_SEALED_KEPT = 1024


class _Ruleset:
    """One created durable-rules ruleset of a trial: its handle, rules, parts, and what the
    action of each of its rules does."""

    def __init__(self, trial: Trial, definition: dict[str, Any], parts: dict[str, Part],
                 names: dict[str, str], deciding: tuple[Criterion, ...]):
        """`definition` as compiled, deciding the criteria `deciding`; the engine is given
        it with the fields' short `names`."""
        engine_definition = renamed(definition, names)
        digest = hashlib.sha256(json.dumps(engine_definition, sort_keys=True).encode()).hexdigest()
        self.name = f"{trial.id}-{trial.content_hash[:12]}-{digest[:12]}"
        self.definition = definition
        self.parts = parts
        criteria = {c.id: c for c in trial.criteria}
        self.actions: dict[str, Action] = {}
        for rule in definition:
            action = _action_of(rule, parts, criteria)
            if action is not None:
                self.actions[rule] = action
        # with a seal, criteria read only the final snapshot (compile_rulesets)
        self.sealed = "seal" in definition
        self.enabling = frozenset(names[name] for name in enabling_fields(definition) if name in names)
        # the fields the rules that read unsealed snapshots read: such a snapshot carries
        # only the facts with one of them (`Screener._evaluate_in`)
        self.unsealed = frozenset(names[name] for name in enabling_fields(definition, absence=True)
                                  if name in names)
        # and those that rules reading a sealed snapshot that is not final read: the parts'
        self.unfinal = frozenset(names[name] for name in enabling_fields(definition, True, (FINAL,))
                                 if name in names)
        # the criteria this ruleset decides, in trial order, with the facts each reads; and
        # the outcome of those without a rule for their passing outcome: theirs when none of
        # their rules fires (it was left out, or it cannot hold and another always fires)
        self.criteria = tuple((c.id, c.facts) for c in deciding)
        self.implied = {c.id: passing for c in deciding
                        if f"{c.id}.{(passing := passing_outcome(c))}" not in definition}
        self.handle = _ruleset(trial, self.name, engine_definition)
        # with a seal: the facts an unsealed snapshot carries (set by the Screener), and of
        # those the ranged facts whose least end alone its rules read (they test a fact's
        # presence; a range, which reads both ends, only where a score is settled early)
        self.unsealed_facts: tuple[str, ...] | None = None
        self.least_only: frozenset[str] = frozenset()
        self.unfinal_facts: tuple[str, ...] = ()  # and one sealed but not final
        # what a sealed snapshot carries by the parts decided (`sealed_reads`), as the candidates go
        self._sealed_reads: dict[tuple[str, ...], tuple[tuple[str, ...], frozenset[str]]] = {}
        # the fields each part's rules read: a sealed snapshot carries the facts of the parts
        # still undecided only (a decided part's rules test that its outcome is absent)
        self.part_reads = {name: frozenset(names[field] for field in enabling_fields(
            {rule: definition[rule] for rule in (f"{name}.met", f"{name}.not_met", f"{name}.unknown")
             if rule in definition}, True, ()) if field in names) for name in parts}
        self.part_facts: dict[str, frozenset[str]] = {}  # the facts of those fields (set by the Screener)
        # the fields the rules reading the final snapshot read (criteria, missing facts, seen),
        # and their facts in trial order (set by the Screener)
        self.final_reads = frozenset(names[field] for field in final_fields(definition) if field in names)
        self.final_facts: tuple[str, ...] = ()
        # the start of the JSON text of each part's outcome field, after a comma (None when
        # no rule reads it)
        self.part_fields = {name: None if (key := names.get(part.field)) is None else f',"{key}":'
                            for name, part in parts.items()}

    def sealed_reads(self, decided: Mapping[str, str]) -> tuple[tuple[str, ...], frozenset[str]]:
        """What a sealed snapshot that is not final carries once the parts `decided` are
        decided: the facts the undecided parts read, in trial order, and the engine's fields
        they read (of the terms computed, it carries those). Only the parts read such a
        snapshot, and a decided part's rules test that its outcome is absent (the outcomes
        are always carried). The parts of a condition are decided level by level, so the
        same few sets recur from candidate to candidate: each is found once (up to
        `_SEALED_KEPT`)."""
        key = tuple(decided)
        known = self._sealed_reads.get(key)
        if known is None:
            undecided = [name for name in self.part_facts if name not in decided]
            facts = frozenset().union(*(self.part_facts[name] for name in undecided))
            known = (tuple(name for name in self.unfinal_facts if name in facts),
                     frozenset().union(*(self.part_reads[name] for name in undecided)))
            if len(self._sealed_reads) >= _SEALED_KEPT:
                self._sealed_reads.clear()
            self._sealed_reads[key] = known
        return known


class Screener:
    """Evaluates candidates of one trial. Use from one thread; one per process is enough."""

    def __init__(self, trial: Trial, firings: bool = True):
        """Compile the trial and create its rulesets; raises RulesError if the engine refuses.

        The compiler keeps every rule and ruleset within what durable-rules takes (conditions
        cut into parts, networks regrouped, criteria spread over several rulesets), so a
        refusal here names a rule the engine still would not build.

        With `firings` False the results carry no firings (`Result.firings` is empty): the
        same decisions, outcomes and missing facts, for a run that writes no trace.
        """
        self.trial = trial
        compiled = cache.remembered("rulesets", lambda: _trial_key(trial), lambda: compile_rulesets(trial), list)
        # the engine's name of each field a condition reads; other fields are not sent
        self._names = names = short_names(definition for definition, _ in compiled)
        deciding = criteria_of(trial, [definition for definition, _ in compiled])
        self._rulesets = [_Ruleset(trial, definition, parts, names, criteria)
                          for (definition, parts), criteria in zip(compiled, deciding)]
        self._firings = firings
        self._derivations = {d.id: d for d in trial.derivations}
        self._criteria: dict[str, Criterion] = {c.id: c for c in trial.criteria}
        self._fact_order = {name: i for i, name in enumerate(trial.facts)}
        lowered, self._terms = lower_criteria(trial)
        self._criterion_terms = {cid: _terms_in(condition) for cid, condition in lowered.items()}
        self._evaluator = Evaluator(trial.facts)
        self._lists = any(spec.type == "list" for spec in trial.facts.values())
        self._asked_conditions = {c.id: c.condition for c in trial.criteria if c.ask}
        self._never_facts = frozenset(name for name, spec in trial.facts.items()
                                      if Special.NEVER in spec.special)
        # the criteria in trial order, and each with the outcome that fails it (an outcome is
        # met, not_met or unknown: the last of the rule names `compile_rulesets` gives)
        self._criterion_order = tuple(c.id for c in trial.criteria)
        self._failing = tuple((c.id, "not_met" if c.kind == "inclusion" else "met") for c in trial.criteria)
        # only decimals, quantities, dates and lists change form on their way into the engine
        places = engine_places(trial)
        self._ranged = {name: (spec, places.get(name)) for name, spec in trial.facts.items()
                        if ranged_fields.is_ranged(spec)}
        self._encoders = {name: encoder(spec, places.get(name)) for name, spec in trial.facts.items()}
        # the engine's name of each fact's field, its `never` marker, and a ranged fact's
        # two ends; None for a field no condition reads (it is not sent)
        # (as the start of its JSON text: '"k":')
        self._fields = {name: _start(names.get(FIELD_PREFIX + name)) for name in trial.facts}
        self._never_fields = {name: _start(names.get(NEVER_PREFIX + name)) for name in self._never_facts}
        # a ranged fact's two ends, and how it is written holding one value (nearly always):
        # both ends its encoded value, as ranged_fields.ends gives them, without its dispatch
        # on the fact's type
        self._one_value = {name: _OneValue(_start(names.get(LOW_PREFIX + name)), _start(names.get(HIGH_PREFIX + name)),
                                           self._encoders[name] or (int if spec.type == "integer" else _same))
                           for name, (spec, _) in self._ranged.items()}
        self._plans = {name: self._plan(name, spec) for name, spec in trial.facts.items()}
        for ruleset in self._rulesets:
            if ruleset.sealed:
                ruleset.unsealed_facts, ruleset.unfinal_facts, *of_parts = (tuple(self._facts_reading(reads))
                                                                           for reads in (ruleset.unsealed,
                                                                                         ruleset.unfinal,
                                                                                         *ruleset.part_reads.values()))
                ruleset.part_facts = {name: frozenset(facts) for name, facts in zip(ruleset.part_reads, of_parts)}
                ruleset.final_facts = tuple(self._facts_reading(ruleset.final_reads))
                ruleset.least_only = frozenset(
                    name for name in ruleset.unsealed_facts
                    if (one := self._one_value.get(name)) is not None and one.low is not None
                    and one.high is not None and one.low[1:-2] in ruleset.unsealed
                    and one.high[1:-2] not in ruleset.unsealed)
        # the JSON text of a derivation's done mark, after a comma (None when no rule reads it)
        self._done_pieces = {d.id: None if (key := names.get(DONE_PREFIX + d.id)) is None else f',"{key}":1'
                             for d in trial.derivations}
        # the engine's fields a fact writes: for a value, and for `never` (see _encode_one)
        self._keys = {name: (self._keys_of(name, None), self._keys_of(name, Special.NEVER))
                      for name in trial.facts}
        # per derived fact, the values it was derived with that fit it (`formulas.check_range`
        # is pure: a whole number, a yes or no, a choice or a date is checked once a fact)
        self._fitting: dict[str, set[Any]] = {d.fact: set() for d in trial.derivations}
        # the marks of a sealed and of a final snapshot, by the name the engine reads, if any
        self._sealed_mark = names.get(SEALED, SEALED)
        self._final_mark = names.get(FINAL, FINAL)

    def _facts_reading(self, reads: frozenset[str]) -> Iterable[str]:
        """The facts, in trial order, one of whose engine fields (value, `never` marker, a
        range's ends) is in `reads`."""
        for name in self.trial.facts:
            one = self._one_value.get(name)
            if any(field is not None and field[1:-2] in reads
                   for field in (self._fields[name], self._never_fields.get(name),
                                 *((one.low, one.high) if one is not None else ()))):
                yield name

    def _plan(self, name: str, spec: Any) -> dict[Any, str] | str | tuple[()] | None:
        """How `_encode` writes a value of fact `name`: None when no rule reads it; the start
        of its text when a value is written as it is (a whole number or a text); () for a
        list (written by `_encode_one` each time); else the text of each value met so far (a
        yes/no or a choice: each of its values; a date or number: those `_encode_one`
        wrote, up to `_REMEMBERED`)."""
        field = self._fields[name]
        if spec.type == "list":
            return () if field is not None or self._never_fields.get(name) else None
        if name in self._ranged:
            one = self._one_value[name]
            return None if one.low is None and one.high is None and not self._never_fields.get(name) else one
        if field is None and self._never_fields.get(name) is None:
            return None
        if field is not None and spec.type == "boolean":
            return {True: field + "true", False: field + "false"}
        if field is not None and spec.type == "enum":
            return {value: field + _scalar(value) for value in spec.values}
        if field is not None and self._encoders[name] is None and name not in self._never_facts:
            return field
        return {}

    @property
    def definition(self) -> dict[str, Any]:
        """Every rule of the trial's rulesets by name (they share the derivations and terms)."""
        merged: dict[str, Any] = {}
        for ruleset in self._rulesets:
            merged.update(ruleset.definition)
        return merged

    @property
    def ruleset_names(self) -> tuple[str, ...]:
        """The names of the trial's durable-rules rulesets (usually one)."""
        return tuple(r.name for r in self._rulesets)

    # --- the durable-rules session ------------------------------------------------------

    def _check(self, result: tuple[int, int], kind: str) -> int:
        code, state = result
        if code == _NOT_HANDLED:
            raise EngineError(f"no rule consumed a {kind!r} fact")
        if code == _OBSERVED:
            raise EngineError(f"the {kind!r} fact was asserted twice")
        if code != 0:
            raise EngineError(f"durable-rules error {code}")
        return state

    def _encode(self, values: dict[str, FactValue], start: int) -> tuple[int, dict[str, str]]:
        """The JSON text of the engine's fields of each of `values` from the `start`-th on
        that has some (fact -> text, without braces), and how many values are encoded now
        (values only grow, by derived facts, during a session).

        Every value of every candidate passes here, so the text is written piece by piece,
        each fact's as `_plans` says: most are a piece written before, for the same value."""
        plans = self._plans
        pieces: dict[str, str] = {}
        for name, value in itertools.islice(values.items(), start, None) if start else values.items():
            plan = plans[name]
            if plan.__class__ is dict:
                piece = plan.get(value)
                if piece is None or value is NEVER:
                    piece = self._encode_one(name, value, plan)
                    if not piece:
                        continue
            elif plan is None:
                continue  # no rule reads the fact
            elif plan.__class__ is _OneValue:
                piece = plan.remembered.get(value)
                if piece is None:
                    if value.__class__ is Interval or value is NEVER:
                        piece = self._encode_one(name, value, None)
                        if not piece:
                            continue
                    else:
                        piece = plan.write(value)
                        if not piece:
                            continue
            elif plan.__class__ is tuple:
                piece = self._encode_one(name, value, None)
                if not piece:
                    continue
            else:
                kind = value.__class__
                piece = plan + (int.__repr__(value) if kind is int else _encode_text(value) if kind is str
                                else _scalar(value))
            pieces[name] = piece
        return len(values), pieces

    def _encode_one(self, name: str, value: FactValue, remembered: dict[Any, str] | None) -> str:
        """The JSON text of the engine's fields of fact `name` with `value` (empty when it
        has none), remembered for the next candidate with the same value when it is one
        value, up to `_REMEMBERED` values a fact."""
        if value is NEVER and name in self._never_fields:
            field = self._never_fields[name]
            return "" if field is None else field + "1"
        if name in self._ranged:  # its least and greatest values (screener.rules.ranged)
            one = self._one_value[name]
            if value is NEVER:
                return ""  # a fact that cannot be `never` (an error found elsewhere)
            if value.__class__ is not Interval:
                return one.write(value)
            spec, places = self._ranged[name]
            least, greatest = ranged_fields.ends(spec, value, places)
            return ",".join(([] if one.low is None else [one.low + _scalar(least)])
                            + ([] if one.high is None else [one.high + _scalar(greatest)]))
        elif (field := self._fields[name]) is not None:
            scaled = self._encoders[name]
            piece = field + _scalar(value if scaled is None else scaled(value))
        else:
            return ""
        if remembered is not None and value.__class__ is not Interval and len(remembered) < _REMEMBERED:
            remembered[value] = piece
        return piece

    def _keys_of(self, name: str, value: FactValue) -> list[str]:
        """The names of the engine's fields fact `name` with `value` writes (`_encode_one`)."""
        if value is NEVER and name in self._never_fields:
            fields = [self._never_fields[name]]
        elif name in self._ranged:
            one = self._one_value[name]
            fields = [] if value is NEVER else [one.low, one.high]
        else:
            fields = [self._fields[name]]
        return [field[1:-2] for field in fields if field is not None]

    @staticmethod
    def _snapshot(sid: str, fields: str, marks: str) -> tuple[str, str, str]:
        """The JSON text of a new snapshot fact; how every message of a rule fired on it goes
        on after the rule's name (the engine echoes the fact's text, sid first, id second);
        and the text that retracts it. `fields` is the JSON text of the candidate's fields
        (see `_encode`), written once and reused by every snapshot of the candidate; `marks`
        that of the done marks, parts decided and terms computed so far, each after a comma.
        A fact is retracted by its sid and id alone (rete.c finds the stored fact by them and
        reads nothing else of the text), so the retraction is not the whole fact parsed again."""
        head = f'{{"sid":"{sid}","id":"v{next(_snapshot_ids)}"'
        if fields:
            return f'{head},"{KIND}":"{SNAPSHOT}",{fields}{marks}}}', f'":{{"m":{head}', head + "}"
        return f'{head},"{KIND}":"{SNAPSHOT}"{marks}}}', f'":{{"m":{head}', head + "}"

    def evaluate(self, facts: dict[str, FactValue]) -> Result:
        """Decide one candidate from typed facts (unknown facts simply absent).

        Returns the Result. Raises ConflictError when a given fact disagrees with what a
        derivation computes (ImpossibleFacts when the inputs contradict each other or give a
        value outside the derived fact's range), once the candidate's derivations are all
        done: the error is the first in the trial's fact order and carries every other one
        (`ConflictError.each`). Raises EngineError if durable-rules reports a failure.
        """
        known = self.trial.facts
        values = {k: v for k, v in facts.items() if v is not None and k in known}
        self._computed: dict[str, FactValue] = {}  # reported facts: the value computed beside
        self._unknown_terms: dict[str, int] = {}  # term -> how many of its inputs it was unknown with
        self._warnings: dict[str, str] = {}
        outcomes: dict[str, str] = {}
        missing: set[str] = set()
        derived: dict[str, FactValue] = {}
        firings: list[Firing] | None = [] if self._firings else None  # None: not recorded
        failures: dict[str, tuple[Failure, dict[str, Any]]] = {}  # term or derived fact -> why
        contradictions: dict[str, ConflictError] = {}  # derived fact -> its contradiction
        for index, ruleset in enumerate(self._rulesets):
            # every ruleset derives the same facts and terms; their firings and
            # contradictions are recorded once
            self._evaluate_in(ruleset, values, outcomes, missing, derived, failures,
                              contradictions, firings, firings if index == 0 or firings is None else [])
            if contradictions:
                break  # the other rulesets derive the same facts: they would find the same
        error: ConflictError | None = None
        if contradictions:
            error = self._together(contradictions.values())
        elif failures and (needed := self._needed_failures(outcomes, failures)):
            error = self._together(needed)
            del needed
        if error is not None:
            # The error's traceback holds this frame: none of its locals may hold the error,
            # or the two make a cycle that keeps the candidate's facts (and the caller's
            # frames, a batch's row) until the garbage collector finds it.
            contradictions.clear()
            try:
                raise error
            finally:
                del error
        result = self._result(outcomes, missing, derived, firings)
        if result.decision == "undetermined" and self._lists:
            # list items to complete (or items to add), after the facts
            entries = to_collect(self._evaluator, self._asked_conditions, outcomes, values, self._fact_order)
            if entries:
                result = dataclasses.replace(result, missing=result.missing + entries)
        return result

    def _together(self, errors: Iterable[ConflictError]) -> ConflictError:
        """One error for all of `errors`: the first in the trial's fact order, carrying the
        others in that order (those that name a criterion, not a fact, last)."""
        rank = self._fact_order
        first, *others = sorted(errors, key=lambda error: rank.get(error.fact, len(rank)))
        return first.with_others(others)

    def _evaluate_in(self, ruleset: "_Ruleset", values: dict[str, FactValue],
                     outcomes: dict[str, str], missing: set[str], derived: dict[str, FactValue],
                     failures: dict[str, tuple[Failure, dict[str, Any]]],
                     contradictions: dict[str, ConflictError],
                     firings: list[Firing] | None, derivation_firings: list[Firing] | None) -> None:
        """Run one candidate's session in one ruleset, adding to the results so far.

        This loop runs for every rule fired in a batch (some 25 a candidate), so it looks up
        each rule's action in the table made with the ruleset, encodes each value once, and
        writes each snapshot's JSON text once, retracting it by its sid and id. No
        action raises for the candidate's data: a contradiction is recorded, the other
        derivations fired on the snapshot run, and at the seal the candidate stops, its
        remaining derivations run without the engine (`_derive_rest`) and its snapshot
        retracted. Either way the session is left as it was before the candidate and kept
        for the next one; it is deleted only when the engine itself fails.
        """
        handle = ruleset.handle
        parts = ruleset.parts
        names = self._names
        actions = ruleset.actions
        done: set[str] = set()
        decided: dict[str, str] = {}  # outcomes of parts of split conditions
        term_fields: set[str] = set()  # fields of the hidden terms computed (the engine's names)
        done_text = ""  # the JSON text of the derivations' done marks, each after a comma
        marks = ""  # and that of the parts' outcomes
        term_marks: list[tuple[str, str]] = []  # each term field's name and text, for sealed snapshots
        # (which carry only those their rules read; a trial with terms has a seal); of those,
        # the ones the rules reading unsealed snapshots read (the terms' done marks: no such
        # rule reads a term's value)
        unsealed_reads = ruleset.unsealed
        terms_unsealed = ""
        marked: set[str] = set()  # the marks the snapshots carry (sealed, final)
        encoded, pieces = self._encode(values, 0)  # the facts as the engine reads them
        # Until a snapshot is sealed, only the derivations, terms and seal read it: it carries
        # only the facts these rules read (a fraction of the text the engine parses, echoes
        # in each message and parses again to retract).
        # Then, until it is final, only the parts read it: it carries the facts and terms of
        # the parts still undecided, and the parts' outcomes. The final snapshot carries what
        # the criteria, their missing facts and `seen` read.
        # Without a seal (no derivation, no term), every snapshot carries every fact.
        early = ruleset.unsealed_facts
        if early is None:
            given = ",".join(pieces.values())
        else:
            least_only = ruleset.least_only
            unsealed = ",".join([_least(pieces[name]) if name in least_only else pieces[name]
                                 for name in early if name in pieces])
            seal_text = ""  # the sealed and final marks written so far, each after a comma
        sid = _session(handle)
        decided_cleanly = False
        seen = False  # whether the last rule on the snapshot the criteria read has fired
        try:
            snapshot, echo, retraction = self._snapshot(sid, given if early is None else unsealed, "")
            state = self._check(_dre.assert_fact(handle, snapshot), SNAPSHOT)

            pending: list[str] = []  # derivations fired on the current snapshot
            pending_parts: dict[str, str] = {}  # parts decided on the current snapshot
            pending_terms: dict[str, int] = {}  # terms computed on the current snapshot

            started = _dre.start_action_for_state(handle, state)
            message = started[1] if started else None
            while message:
                end = message.find('"', 2)
                rule = message[2:end]
                if not message.startswith(echo, end):
                    rule = _fired_on(message, echo)
                action = actions.get(rule)
                if action is None:
                    raise EngineError(f"durable-rules fired an unknown rule {rule!r}")
                kind = action[0]
                # (the kinds by how many of them fire for a candidate of a trial with terms and parts)
                if kind == _PART:  # a part of a split condition
                    _, name, outcome, reads, head = action
                    if name not in pending_parts and name not in decided:
                        pending_parts[name] = outcome
                        if firings is not None:
                            firings.append(Firing(rule, head, outcome,
                                                  {f: values[f] for f in reads if f in values}))
                elif kind == _TERM:
                    if not contradictions:  # only criteria read terms, and they will not run
                        self._term(action[1], values, pending_terms, failures, derivation_firings)
                elif kind == _CRITERION:
                    _, head, outcome, reads = action
                    known = outcomes.get(head)
                    if known is None:
                        outcomes[head] = outcome  # its firing is recorded with the others, below
                    elif known != outcome:
                        # A condition with OR clauses fires once per clause that holds; the
                        # repeats carry nothing new, but two different outcomes would be a bug.
                        raise EngineError(f"criterion {head} is both {known} and {outcome}")
                elif kind == _MISSING:
                    missing.add(action[1])
                elif kind == _DERIVE:
                    rule_id = action[1]
                    if rule_id not in pending and self._derive(
                            rule_id, values, derived, derivation_firings, failures, contradictions):
                        pending.append(rule_id)
                elif kind == _SEAL:
                    if action[1] and contradictions:
                        # Some derivation contradicts the given facts: the candidate is an
                        # error and its criteria need not run. The derivations that read what
                        # this snapshot derived are done here, without another snapshot, and
                        # retracting this one drops the actions still queued on it.
                        self._derive_rest(values, derived, done.union(pending), contradictions)
                        decided_cleanly = _tidy(handle, state, retraction)
                        return
                    changed = bool(pending or pending_parts or pending_terms)
                    added: list[str] = []  # fields this snapshot's actions add
                    if changed:
                        for rule_id in pending:
                            if (piece := self._done_pieces[rule_id]) is not None:
                                done_text += piece
                        done.update(pending)
                        for name, outcome in pending_parts.items():
                            if (field := ruleset.part_fields[name]) is not None:
                                marks += f'{field}"{outcome}"'
                        decided.update(pending_parts)
                        for name, value in pending_terms.items():
                            if (key := names.get(name)) is not None and key not in term_fields:
                                term_fields.add(key)
                                piece = f',"{key}":{int.__repr__(value) if value.__class__ is int else _scalar(value)}'
                                term_marks.append((key, piece))
                                if key in unsealed_reads:
                                    terms_unsealed += piece
                                added.append(key)
                        pending.clear()
                        pending_parts.clear()
                        pending_terms.clear()
                        encoded, derived_pieces = self._encode(values, encoded)  # the derived values
                        if derived_pieces:
                            for name in derived_pieces:
                                added.extend(self._keys[name][values[name] is NEVER])
                            if early is None:
                                derived_text = ",".join(derived_pieces.values())
                                given += "," + derived_text if given else derived_text
                            else:
                                pieces.update(derived_pieces)
                                if more_text := ",".join([
                                        _least(derived_pieces[name]) if name in least_only else derived_pieces[name]
                                        for name in early if name in derived_pieces]):
                                    unsealed += "," + more_text if unsealed else more_text
                    seal_marks = ""
                    was_sealed = self._sealed_mark in marked
                    was_final = self._final_mark in marked
                    if ruleset.sealed:
                        # The next snapshot is sealed (parts read it) unless a derivation or
                        # term may fire on what this one added; it is final (criteria read
                        # it) when besides every part is decided. Else it is replaced once
                        # more: the first snapshot always, a last one to mark final.
                        more = not ruleset.enabling.isdisjoint(added)
                        sealed, final = self._sealed_mark, self._final_mark
                        if not more and sealed not in marked:
                            marked.add(sealed)
                            if sealed != SEALED:  # some rule reads it
                                seal_marks += f',"{sealed}":1'
                        if not more and final not in marked and len(decided) == len(parts):
                            marked.add(final)
                            if final != FINAL:
                                seal_marks += f',"{final}":1'
                    now_sealed = self._sealed_mark in marked
                    now_final = self._final_mark in marked
                    if changed or seal_marks or now_sealed != was_sealed or now_final != was_final:
                        if seal_marks:  # (only a sealed ruleset has them)
                            seal_text += seal_marks
                        if early is None:
                            fields, now_marks = given, done_text + marks
                        elif now_sealed:
                            # the facts and terms the rules that read it read: on the final
                            # snapshot the criteria's, their missing facts' and `seen`; on
                            # another the undecided parts'
                            facts, reads = (ruleset.final_facts, ruleset.final_reads) if now_final \
                                else ruleset.sealed_reads(decided)
                            fields = ",".join([pieces[name] for name in facts if name in pieces])
                            fields = fields + seal_text if fields else seal_text[1:]
                            now_marks = marks + "".join([piece for key, piece in term_marks if key in reads])
                        else:
                            fields, now_marks = unsealed, done_text + marks + terms_unsealed
                        old = retraction
                        snapshot, echo, retraction = self._snapshot(sid, fields, now_marks)
                        self._check(_dre.retract_fact(handle, old), SNAPSHOT)
                        self._check(_dre.assert_fact(handle, snapshot), SNAPSHOT)
                elif kind == _SEEN:
                    seen = True
                message = _dre.complete_and_start_action(handle, state)
            # every action has run: the session is left as it was before this candidate
            self._check(_dre.retract_fact(handle, retraction), SNAPSHOT)
            if not seen:
                # A passing outcome is inferred from the rules that did not fire: an engine
                # that stopped before the last of them must not let the candidate pass.
                raise EngineError("the engine stopped before the last rule on the candidate's final snapshot")
            decided_cleanly = True
        finally:
            if not decided_cleanly:
                _end_session(handle)  # an engine error may have left actions or facts behind
        # A criterion none of whose rules fired has the outcome whose rule is left out. The
        # criteria fire last, on the final snapshot, in trial order: so are they recorded.
        implied = ruleset.implied
        if firings is None:
            outcomes.update(implied | outcomes)  # the outcomes fired stay
            return
        for criterion, reads in ruleset.criteria:
            outcome = outcomes.get(criterion)
            if outcome is None:
                outcome = implied.get(criterion)
                if outcome is None:
                    continue  # no outcome: an engine failure, reported with the result
                outcomes[criterion] = outcome
            firings.append(Firing(f"{criterion}.{outcome}", criterion, outcome,
                                  {name: values[name] for name in reads if name in values}))

    def _term(self, name: str, values: dict[str, FactValue], pending: dict[str, int],
              failures: dict[str, tuple[Failure, dict[str, Any]]], firings: list[Firing] | None) -> None:
        """Compute hidden term `name` for the next snapshot (the action of its rule)."""
        term = self._terms[name]
        if term.done in pending:
            return  # another of its rules fired on this snapshot
        unknown = self._unknown_terms.get(name)
        if unknown is not None and unknown == sum(1 for f in term.inputs if f in values):
            return  # unknown from these same inputs on an earlier snapshot (facts never change)
        fields, failure = compute(term, self._evaluator, values)
        if failure is not None:
            failures[name] = (failure, {f: values[f] for f in term.inputs if f in values})
        elif fields is None:
            # unknown for now: computed again if a later snapshot brings more of its inputs
            self._unknown_terms[name] = sum(1 for f in term.inputs if f in values)
            return
        if fields:
            pending.update(fields)
        pending[term.done] = 1
        if firings is not None:
            firings.append(Firing(rule=f"term.{name}", criterion=None, outcome=None,
                                  facts={f: values[f] for f in term.inputs if f in values},
                                  derived=dict(fields or {})))

    def _derive_rest(self, values: dict[str, FactValue], derived: dict[str, FactValue],
                     done: set[str], contradictions: dict[str, ConflictError]) -> None:
        """Run the derivations not in `done` whose inputs are known, until none is left to
        run, for a candidate that is an error already: its contradictions are all found
        without matching the criteria against another snapshot. A derivation runs here when
        its rule would fire: a function's inputs all known, a formula's value known."""
        todo = [d for d in self.trial.derivations if d.id not in done]
        progress = True
        while progress:
            progress = False
            for derivation in tuple(todo):
                if derivation.formula is None and not all(name in values for name in derivation.inputs):
                    continue
                if self._derive(derivation.id, values, derived, [], {}, contradictions):
                    todo.remove(derivation)
                    progress = True

    def _needed_failures(self, outcomes: dict[str, str],
                         failures: dict[str, tuple[Failure, dict[str, Any]]]) -> list[ImpossibleFacts]:
        """The values that could not be computed and are errors: those a criterion that
        stayed unknown reads (the decision depends on them), each once."""
        needed: dict[str, ImpossibleFacts] = {}
        for criterion in self.trial.criteria:
            if outcomes.get(criterion.id) != "unknown":
                continue
            reads = set(self._criterion_terms[criterion.id]) | set(self.trial.expanded_facts(criterion))
            for name, (failure, inputs) in failures.items():
                if name in reads:
                    what = name if name in self.trial.facts else f"criterion {criterion.id}"
                    if what not in needed:
                        needed[what] = ImpossibleFacts(what, None, inputs, failure.reason)
        return list(needed.values())

    def _derive(self, rule_id: str, values: dict[str, FactValue], derived: dict[str, FactValue],
                firings: list[Firing] | None, failures: dict[str, tuple[Failure, dict[str, Any]]],
                contradictions: dict[str, ConflictError]) -> bool:
        """Run derivation `rule_id` (the action of its rule); returns whether it is done.

        A contradiction is added to `contradictions` (once per fact), never raised here: the
        rest of the candidate is still derived, reading the given value where one was given.
        """
        derivation = self._derivations[rule_id]
        if derivation.formula is not None:
            inputs = {name: values[name] for name in derivation.inputs if name in values}
            value = formulas.derive(self._evaluator, derivation, self.trial.facts[derivation.fact], values)
            if isinstance(value, Failure):
                failures[derivation.fact] = (value, inputs)
                return True
            if value is None:
                return False  # unknown for now; computed again if more facts arrive
        elif derivation.function == "banded_score" and (
                (read := _read(values, derivation.inputs)) is None or read[1]):
            # a score is settled before all its parts are known when the rest cannot change
            # its class (docs/rules-language.md, "Settled when settled"); a part known as a
            # range may score the points of any band it reaches
            inputs = {name: values[name] for name in derivation.inputs if name in values}
            value = banded_score_settled(inputs, derivation.params["points"], derivation.params["classes"],
                                         derivation.params.get("normal_unless"))
            given = values.get(derivation.fact)
            gate = derivation.params.get("normal_unless")
            if value is None and given is not None and any(isinstance(v, Interval) for v in inputs.values()) \
                    and (all(name in values for name in derivation.params["points"])
                         or (gate is not None and values.get(gate) is False)):
                # every value of the ranges gives some class (the parts not given score as
                # normal): a given class none of them gives contradicts them
                labels = banded_score_classes(inputs, derivation.params["points"],
                                              derivation.params["classes"], gate)
                if given not in labels:  # no total the ranges allow gives the given class
                    shown = " or ".join(sorted(str(label) for label in labels))
                    contradictions.setdefault(derivation.fact, ConflictError(derivation.fact, given, shown, inputs))
                    return True
            if value is None:
                return False  # unknown for now; computed again if more facts arrive
        else:
            function = FUNCTIONS[derivation.function]
            if derivation.function != "banded_score":  # (a score's inputs are read above)
                read = _read(values, derivation.inputs)  # its rule fired: every input is known
            inputs, ranged = read if read is not None else ({n: values[n] for n in derivation.inputs}, False)
            try:
                if ranged:
                    value, possible = _ranged_function(function, inputs, derivation)
                    given = values.get(derivation.fact)
                    if value is None and given is not None and given not in possible:
                        # no value the ranges allow is the given one
                        shown = " or ".join(sorted(str(p) for p in possible))
                        contradictions.setdefault(derivation.fact,
                                                  ConflictError(derivation.fact, given, shown, inputs))
                        return True
                    if value is None:
                        return False  # the range leaves it open: unknown
                else:
                    value = function.call(inputs, derivation.params, derivation.inputs)
            except DerivationError as exc:
                contradictions.setdefault(derivation.fact,
                                          ImpossibleFacts(derivation.fact, None, inputs, str(exc)))
                return True
        fitting = self._fitting[derivation.fact]
        if (kind := value.__class__) not in _EXACTLY_KEPT or (kind, value) not in fitting:
            try:
                formulas.check_range(self.trial.facts[derivation.fact], value)
            except InvalidValue as exc:
                contradictions.setdefault(derivation.fact,
                                          ImpossibleFacts(derivation.fact, value, inputs, exc.reason))
                return True
            if kind in _EXACTLY_KEPT and len(fitting) < _REMEMBERED:
                fitting.add((kind, value))
        given = values.get(derivation.fact)
        if given is not None and derivation.reported:
            # a reported measurement decides; the computed value is kept beside it
            if derivation.fact not in self._computed:
                self._computed[derivation.fact] = value
                if _apart(given, value) > derivation.tolerance:
                    self._warnings[derivation.fact] = reported_warning(
                        derivation.fact, given, value, inputs, derivation.tolerance)
            if firings is not None:
                firings.append(Firing(rule=f"derive.{rule_id}", criterion=None, outcome=None,
                                      facts=inputs, derived={}))
            return True
        if given is not None and not formulas.agrees(given, value):
            contradictions.setdefault(derivation.fact, ConflictError(derivation.fact, given, value, inputs))
            return True
        if given is None:
            values[derivation.fact] = value
            derived[derivation.fact] = value
        if firings is not None:
            firings.append(Firing(rule=f"derive.{rule_id}", criterion=None, outcome=None,
                                  facts=inputs, derived={derivation.fact: value}))
        return True

    def _result(self, outcomes: dict[str, str], missing: set[str], derived: dict[str, FactValue],
                firings: list[Firing] | None) -> Result:
        """The Result, with the decision and failed criteria as `decide` and `failed_criteria`
        give them (a criterion neither failed nor passed is unknown)."""
        try:
            ordered = {criterion: outcomes[criterion] for criterion in self._criterion_order}
        except KeyError as exc:
            raise EngineError(f"no outcome for criterion {exc.args[0]}") from None
        failed = [criterion for criterion, fails in self._failing if ordered[criterion] == fails]
        return Result(
            decision="ineligible" if failed else "undetermined" if "unknown" in ordered.values() else "eligible",
            outcomes=ordered,
            failed=tuple(failed),
            missing=tuple(sorted(missing, key=self._fact_order.__getitem__)),
            derived=derived,
            firings=tuple(firings) if firings else (),
            computed={name: self._computed[name] for name in self.trial.facts if name in self._computed}
            if self._computed else {},
            warnings=tuple(self._warnings[name] for name in self.trial.facts if name in self._warnings)
            if self._warnings else (),
        )


def _read(values: dict[str, FactValue], names: tuple[str, ...]) -> tuple[dict[str, Any], bool] | None:
    """The values of `names` (fact -> value), and whether one of them is a range; None when
    one is not known. A derivation's inputs are read this way for every candidate, in one
    pass."""
    out: dict[str, Any] = {}
    ranged = False
    for name in names:
        value = values.get(name)
        if value is None:
            return None
        out[name] = value
        if isinstance(value, Interval):
            ranged = True
    return out, ranged


def _apart(given: FactValue, computed: FactValue) -> Decimal:
    """How far a reported value is from the computed one; for ranges, the gap between the
    nearest values of the two (0 when they meet)."""
    def ends(value: Any) -> tuple[Decimal, Decimal]:
        if isinstance(value, Interval):
            return (Decimal("-Infinity") if value.low is None else Decimal(str(value.low)),
                    Decimal("Infinity") if value.high is None else Decimal(str(value.high)))
        number = Decimal(str(value))
        return number, number
    (a_low, a_high), (b_low, b_high) = ends(given), ends(computed)
    return max(Decimal(0), a_low - b_high, b_low - a_high)


def _ranged_function(function: Any, inputs: dict[str, FactValue], derivation: Any
                     ) -> tuple[FactValue | None, frozenset[Any]]:
    """A function derivation whose inputs include a range (a birth date known to the month):
    the functions only grow or only shrink with each input (completed years, a date before
    another), so their values at the ends of the ranges bound every other. The one value
    they all give, a whole-number range for an integer, or None (unknown) when a yes/no or
    a class would differ (a score: the class every total its ranges allow falls in) -- or
    when some ends contradict and others not. Raises
    DerivationError when every end does. Also every value it may take, where it has few."""
    if derivation.function == "banded_score":
        labels = banded_score_classes(inputs, derivation.params["points"], derivation.params["classes"],
                                      derivation.params.get("normal_unless"))
        settled = next(iter(labels)) if len(labels) == 1 and None not in labels else None
        return settled, labels
    names = list(inputs)
    choices = [(v.low, v.high) if isinstance(v, Interval) else (v,) for v in inputs.values()]
    results, errors = [], []
    for combination in itertools.product(*choices):
        try:
            results.append(function.call(dict(zip(names, combination)), derivation.params,
                                         derivation.inputs))
        except DerivationError as exc:
            errors.append(exc)
    if not results:
        raise errors[0]
    if errors:
        return None, frozenset(results) | {None}
    if all(r == results[0] for r in results):
        return results[0], frozenset(results)
    if all(isinstance(r, int) and not isinstance(r, bool) for r in results):
        return Interval(min(results), max(results)), frozenset(range(min(results), max(results) + 1))
    return None, frozenset(results)


def _terms_in(condition: Any) -> tuple[str, ...]:
    found: list[str] = []
    stack = [condition]
    while stack:
        e = stack.pop()
        if isinstance(e, Term):
            found.append(e.name)
        elif hasattr(e, "expr") and not isinstance(e, Term):  # a Part of a split condition
            stack.append(e.expr)
        elif hasattr(e, "operands"):
            stack.extend(e.operands)
        elif hasattr(e, "operand"):
            stack.append(e.operand)
    return tuple(found)


def failed_criteria(trial: Trial, outcomes: dict[str, str]) -> tuple[str, ...]:
    """Inclusion criteria not met and exclusion criteria met, in trial order."""
    return tuple(
        c.id for c in trial.criteria
        if (c.kind == "inclusion" and outcomes[c.id] == "not_met")
        or (c.kind == "exclusion" and outcomes[c.id] == "met")
    )


def decide(trial: Trial, outcomes: dict[str, str]) -> str:
    """ineligible if any criterion failed; eligible if every criterion passed; else undetermined."""
    if failed_criteria(trial, outcomes):
        return "ineligible"
    passing = {"inclusion": "met", "exclusion": "not_met"}
    if all(outcomes[c.id] == passing[c.kind] for c in trial.criteria):
        return "eligible"
    return "undetermined"
