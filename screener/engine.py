"""The only module that touches durable-rules. It offers `Screener.evaluate(facts) -> Result`.

durable-rules 2.0.28 is driven here through its C core (`durable_rules_engine`), the same calls
its `engine.Host` makes, without the parts of the Python wrapper that are unsafe for us:
- no `Host`, so none of its background timer threads that segfault beside ours;
- actions are not Python callbacks: each fired rule comes back as a message we handle here,
  so no action can be lost to the two-parameter "async" trap or have its exception swallowed;
- every session is opened with a marker fact that a rule consumes, so `delete_state` never
  meets a session that completed no action (segfault);
- one live session at a time, deleted before the next candidate: far from the 1,024-session
  ceiling, and no two live sessions can collide on the 32-bit sid hash;
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

import functools
import hashlib
import itertools
import json
import re
from typing import Any

import durable_rules_engine as _dre

from screener.rules.compile import (
    DONE_PREFIX, FIELD_PREFIX, KIND, OPEN, SNAPSHOT, Part, compile_rulesets, encode, lower_criteria,
)
from screener.rules import formulas
from screener.rules.evaluate import Evaluator, Failure
from screener.rules.terms import NEVER_PREFIX, Term, compute
from screener.errors import (
    ConflictError, EngineError, ImpossibleFacts, InvalidValue, RuleProblem, RulesError,
)
from screener.rules.functions import FUNCTIONS, DerivationError
from screener.model import Criterion, FactValue, Firing, Result, Special, Trial
from screener.values import coerce

_MESSAGE = re.compile(r'\{"([^"]+)":\{"m":\{"sid":\s*"[^"]*",\s*"id":\s*"([^"]*)"')
_NOT_HANDLED = 1
_OBSERVED = 2
_handles: dict[str, int] = {}  # ruleset name -> C handle; rulesets live for the process


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


class _Ruleset:
    """One created durable-rules ruleset of a trial: its handle, rules and parts."""

    def __init__(self, trial: Trial, definition: dict[str, Any], parts: dict[str, Part]):
        digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()
        self.name = f"{trial.id}-{trial.content_hash[:12]}-{digest[:12]}"
        self.definition = definition
        self.parts = parts
        self.handle = _ruleset(trial, self.name, definition)


class Screener:
    """Evaluates candidates of one trial. Use from one thread; one per process is enough."""

    _sids = itertools.count()

    def __init__(self, trial: Trial):
        """Compile the trial and create its rulesets; raises RulesError if the engine refuses.

        The compiler keeps every rule and ruleset within what durable-rules takes (conditions
        cut into parts, networks regrouped, criteria spread over several rulesets), so a
        refusal here names a rule the engine still would not build.
        """
        self.trial = trial
        self._rulesets = [_Ruleset(trial, definition, parts)
                          for definition, parts in compile_rulesets(trial)]
        self._derivations = {d.id: d for d in trial.derivations}
        self._criteria: dict[str, Criterion] = {c.id: c for c in trial.criteria}
        self._fact_order = {name: i for i, name in enumerate(trial.facts)}
        lowered, self._terms = lower_criteria(trial)
        self._criterion_terms = {cid: _terms_in(condition) for cid, condition in lowered.items()}
        self._evaluator = Evaluator(trial.facts)
        self._never_facts = tuple(name for name, spec in trial.facts.items() if Special.NEVER in spec.special)
        # only decimals and dates change form on their way into the engine
        self._encoders = {
            name: (None if spec.type in ("boolean", "enum", "text", "integer")
                   else functools.partial(encode, spec))
            for name, spec in trial.facts.items()
        }

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

    def _check(self, result: tuple[int, int], fact: dict[str, Any]) -> int:
        code, state = result
        if code == _NOT_HANDLED:
            raise EngineError(f"no rule consumed a {fact.get(KIND)!r} fact")
        if code == _OBSERVED:
            raise EngineError(f"the {fact.get(KIND)!r} fact was asserted twice")
        if code != 0:
            raise EngineError(f"durable-rules error {code}")
        return state

    def _snapshot(self, sid: str, version: int, values: dict[str, FactValue],
                  done: set[str], decided: dict[str, str], parts: dict[str, Part],
                  terms: dict[str, int] | None = None) -> dict[str, Any]:
        fact: dict[str, Any] = {"sid": sid, "id": f"v{version}", KIND: SNAPSHOT}
        for name, value in values.items():
            scaled = self._encoders[name]
            fact[FIELD_PREFIX + name] = value if scaled is None else scaled(value)
        for name in self._never_facts:
            if values.get(name) is Special.NEVER:
                del fact[FIELD_PREFIX + name]
                fact[NEVER_PREFIX + name] = 1
        for rule_id in sorted(done):
            fact[DONE_PREFIX + rule_id] = 1
        for name in sorted(decided):
            fact[parts[name].field] = decided[name]
        if terms:
            fact.update(sorted(terms.items()))
        return fact

    def evaluate(self, facts: dict[str, FactValue]) -> Result:
        """Decide one candidate from typed facts (unknown facts simply absent).

        Returns the Result. Raises ConflictError when a given fact disagrees with what a
        derivation computes (ImpossibleFacts when the inputs contradict each other or give a
        value outside the derived fact's range), EngineError if durable-rules reports a failure.
        """
        values = {k: v for k, v in facts.items() if v is not None and k in self.trial.facts}
        outcomes: dict[str, str] = {}
        missing: set[str] = set()
        derived: dict[str, FactValue] = {}
        firings: list[Firing] = []
        failures: dict[str, tuple[Failure, dict[str, Any]]] = {}  # term or derived fact -> why
        for index, ruleset in enumerate(self._rulesets):
            # every ruleset derives the same facts and terms; their firings are recorded once
            self._evaluate_in(ruleset, values, outcomes, missing, derived, failures,
                              firings, firings if index == 0 else [])
        if failures:
            self._raise_needed_failure(outcomes, failures)
        return self._result(outcomes, missing, derived, firings)

    def _evaluate_in(self, ruleset: "_Ruleset", values: dict[str, FactValue],
                     outcomes: dict[str, str], missing: set[str], derived: dict[str, FactValue],
                     failures: dict[str, tuple[Failure, dict[str, Any]]],
                     firings: list[Firing], derivation_firings: list[Firing]) -> None:
        """Run one candidate's session in one ruleset, adding to the results so far."""
        sid = f"s{next(self._sids)}"
        handle = ruleset.handle
        parts = ruleset.parts
        done: set[str] = set()
        decided: dict[str, str] = {}  # outcomes of parts of split conditions
        term_fields: dict[str, int] = {}  # computed hidden terms, with their done markers
        version = 1
        try:
            opener = {"sid": sid, "id": "open", KIND: OPEN}
            state = self._check(_dre.assert_fact(handle, json.dumps(opener)), opener)
            self._drain(handle, state, lambda rule, fact: None)
            snapshot = self._snapshot(sid, version, values, done, decided, parts)
            state = self._check(_dre.assert_fact(handle, json.dumps(snapshot, ensure_ascii=False)), snapshot)

            pending: list[str] = []  # derivations fired on the current snapshot
            pending_parts: dict[str, str] = {}  # parts decided on the current snapshot
            pending_terms: dict[str, int] = {}  # terms computed on the current snapshot

            def on_rule(rule: str, snapshot_id: str) -> None:
                nonlocal snapshot, version
                if snapshot_id != snapshot["id"]:
                    raise EngineError(f"rule {rule} fired on a stale snapshot")
                head, _, rest = rule.partition(".")
                if head == "derive":
                    rule_id = rest.partition(".")[0]
                    if rule_id not in pending and self._derive(
                            rule_id, values, derived, derivation_firings, failures):
                        pending.append(rule_id)
                elif head == "term":
                    self._term(rest.partition(".")[0], values, pending_terms, failures,
                               derivation_firings)
                elif head == "seal":
                    if pending or pending_parts or pending_terms:
                        done.update(pending)
                        decided.update(pending_parts)
                        term_fields.update(pending_terms)
                        pending.clear()
                        pending_parts.clear()
                        pending_terms.clear()
                        old = snapshot
                        version += 1
                        snapshot = self._snapshot(sid, version, values, done, decided, parts,
                                                  term_fields)
                        self._check(_dre.retract_fact(handle, json.dumps(old, ensure_ascii=False)), old)
                        self._check(_dre.assert_fact(handle, json.dumps(snapshot, ensure_ascii=False)), snapshot)
                elif rest.startswith("missing."):
                    # `<criterion>.missing.<fact>[.<n>]`: one rule per way the fact is read
                    missing.add(rest.split(".")[1])
                elif rule.rpartition(".")[0] in parts:
                    name, _, outcome = rule.rpartition(".")
                    if name not in pending_parts and name not in decided:
                        pending_parts[name] = outcome
                        read = {f: values[f] for f in parts[name].facts if f in values}
                        firings.append(Firing(rule=rule, criterion=head, outcome=outcome, facts=read))
                elif head in outcomes:
                    # A condition with OR clauses fires once per clause that holds; the
                    # repeats carry nothing new, but two different outcomes would be a bug.
                    if outcomes[head] != rest:
                        raise EngineError(f"criterion {head} is both {outcomes[head]} and {rest}")
                else:
                    criterion = self._criteria[head]
                    outcomes[head] = rest
                    read = {name: values[name] for name in criterion.facts if name in values}
                    firings.append(Firing(rule=rule, criterion=head, outcome=rest, facts=read))

            self._drain(handle, state, on_rule)
        finally:
            _dre.delete_state(handle, sid)

    def _term(self, name: str, values: dict[str, FactValue], pending: dict[str, int],
              failures: dict[str, tuple[Failure, dict[str, Any]]], firings: list[Firing]) -> None:
        """Compute hidden term `name` for the next snapshot (the action of its rule)."""
        term = self._terms[name]
        if term.done in pending:
            return  # another of its rules fired on this snapshot
        fields, failure = compute(term, self._evaluator, values)
        read = {f: values[f] for f in term.inputs if f in values}
        if failure is not None:
            failures[name] = (failure, read)
        elif fields is None:
            return  # unknown for now: computed again if a later snapshot brings more facts
        pending.update(fields or {})
        pending[term.done] = 1
        firings.append(Firing(rule=f"term.{name}", criterion=None, outcome=None, facts=read,
                              derived=dict(fields or {})))

    def _raise_needed_failure(self, outcomes: dict[str, str],
                              failures: dict[str, tuple[Failure, dict[str, Any]]]) -> None:
        """A value that could not be computed is an error only when a criterion reading it
        stayed unknown (the decision depends on it)."""
        for criterion in self.trial.criteria:
            if outcomes.get(criterion.id) != "unknown":
                continue
            reads = set(self._criterion_terms[criterion.id]) | set(self.trial.expanded_facts(criterion))
            for name, (failure, inputs) in failures.items():
                if name in reads:
                    what = name if name in self.trial.facts else f"criterion {criterion.id}"
                    raise ImpossibleFacts(what, None, inputs, failure.reason)

    def _drain(self, handle: int, state: int, on_rule: Any) -> None:
        """Run every queued action of the session, handing each fired rule to `on_rule`.

        A message is `{"<rule>":{"m":{"sid": ..., "id": "<fact id>", ...}}}`, echoing the
        fact as we asserted it (sid first, id second). Only the rule name and the fact id
        are needed, so they are sliced out instead of parsing the whole fact each time.
        """
        started = _dre.start_action_for_state(handle, state)
        message = started[1] if started else None
        while message:
            match = _MESSAGE.match(message)
            if match is None:
                raise EngineError(f"unexpected durable-rules message {message[:80]!r}")
            on_rule(match.group(1), match.group(2))
            message = _dre.complete_and_start_action(handle, state)

    def _derive(self, rule_id: str, values: dict[str, FactValue], derived: dict[str, FactValue],
                firings: list[Firing], failures: dict[str, tuple[Failure, dict[str, Any]]]) -> bool:
        """Run derivation `rule_id` (the action of its rule); returns whether it is done."""
        derivation = self._derivations[rule_id]
        if derivation.formula is not None:
            inputs = {name: values[name] for name in derivation.inputs if name in values}
            value = formulas.derive(self._evaluator, derivation, self.trial.facts[derivation.fact], values)
            if isinstance(value, Failure):
                failures[derivation.fact] = (value, inputs)
                return True
            if value is None:
                return False  # unknown for now; computed again if more facts arrive
        else:
            function = FUNCTIONS[derivation.function]
            inputs = {name: values[name] for name in derivation.inputs}
            try:
                value = function.call(inputs, derivation.params, derivation.inputs)
            except DerivationError as exc:
                raise ImpossibleFacts(derivation.fact, None, inputs, str(exc)) from None
        try:
            formulas.check_range(self.trial.facts[derivation.fact], value)
        except InvalidValue as exc:
            raise ImpossibleFacts(derivation.fact, value, inputs, exc.reason) from None
        given = values.get(derivation.fact)
        if given is not None and given != value:
            raise ConflictError(derivation.fact, given, value, inputs)
        if given is None:
            values[derivation.fact] = value
            derived[derivation.fact] = value
        firings.append(Firing(rule=f"derive.{rule_id}", criterion=None, outcome=None,
                              facts=inputs, derived={derivation.fact: value}))
        return True

    def _result(self, outcomes: dict[str, str], missing: set[str], derived: dict[str, FactValue],
                firings: list[Firing]) -> Result:
        ordered: dict[str, str] = {}
        for criterion in self.trial.criteria:
            if criterion.id not in outcomes:
                raise EngineError(f"no outcome for criterion {criterion.id}")
            ordered[criterion.id] = outcomes[criterion.id]
        return Result(
            decision=decide(self.trial, ordered),
            outcomes=ordered,
            failed=failed_criteria(self.trial, ordered),
            missing=tuple(sorted(missing, key=self._fact_order.__getitem__)),
            derived=derived,
            firings=tuple(firings),
        )


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
