"""Step five: a trial's criteria and derivations as rules, fitted into rulesets the engine takes."""
from __future__ import annotations

from typing import Any, Callable

from screener.errors import RuleProblem, RulesError
from screener.model import And, Criterion, In, Not, Or, Special, Trial
from screener.rules.compile.encode import (
    Cond, DONE_PREFIX, FINAL, KIND, OPEN, PRI_CRITERION, PRI_DERIVE, PRI_MISSING, PRI_OPEN, PRI_PART, PRI_SEAL,
    PRI_SEAL_PARTS, PRI_SEEN, SEALED, SNAPSHOT,
)
from screener.rules.compile.kleene import _Kleene
from screener.rules.compile.network import _shape, _test_of
from screener.rules.compile.normal import (
    MAX_FIELDS, MAX_OR_CLAUSES, MAX_OR_WIDTH, MAX_RULES, TooComplex, _all, to_cnf,
)
from screener.rules.compile.parts import Part, decompose, parts_of, split
from screener.rules.ranged import ranged_facts
from screener.rules.terms import Term, lower, needs, settling_alone


def _rule(kind_value: str, cond: Cond, pri: int) -> dict[str, Any]:
    """One durable-rules rule: the kind test, then the clauses of `cond` in normal form.

    Raises TooComplex when the normal form is past what the engine takes in one rule.
    """
    cnf = to_cnf(cond)
    assert cnf is not False
    clauses = [] if cnf is True else cnf
    wide = [len(c) for c in clauses if len(c) > 1]
    if len(wide) > MAX_OR_CLAUSES or max(wide, default=0) > MAX_OR_WIDTH:
        raise TooComplex("too many alternatives for one rule")
    parts: list[dict[str, Any]] = [{KIND: kind_value}]
    for clause in clauses:
        parts.append(clause[0] if len(clause) == 1 else {"$or": clause})
    return {"all": [{"m": parts[0] if len(parts) == 1 else {"$and": parts}}], "pri": pri}


def _paths(kleene: "_Kleene", e: Any, fact: str) -> list[Cond]:
    """`relevant(e, fact)` as a list of alternatives, one per place `fact` is read.

    Used for conditions cut into Parts: each alternative is a conjunction of the Parts on the
    way down being unknown, so it stays small however deep the condition is, where the
    single condition `relevant` builds would multiply out.
    """
    if isinstance(e, Part):
        inner = e.expr
        below = inner.operands if isinstance(inner, (And, Or)) else (inner,)
        return [_all([{e.field: "unknown"}, p]) for o in below for p in _paths(kleene, o, fact)]
    if isinstance(e, Not):
        return _paths(kleene, e.operand, fact)
    if isinstance(e, (And, Or)):
        unknown = kleene.unknown(e)
        return [_all([unknown, p]) for o in e.operands for p in _paths(kleene, o, fact)]
    cond = kleene.relevant(e, fact)
    return [] if cond is False else [cond]


def missing_conditions(trial: Trial, criterion: Criterion, condition: Any,
                       kleene: _Kleene) -> list[tuple[str, Cond]]:
    """(fact, condition) pairs: when each absent input fact could move the criterion.

    A fact may come with several conditions (alternatives) when the condition is cut into
    Parts; any one of them firing names the fact.
    """
    out: list[tuple[str, Cond]] = []
    cut = bool(parts_of(condition))
    by_fact: dict[str, list[Cond]] = {
        f: _paths(kleene, condition, f) if cut else [kleene.relevant(condition, f)]
        for f in criterion.facts}
    pending = list(criterion.facts)
    while pending:
        fact = pending.pop(0)
        conds = [c for c in by_fact[fact] if to_cnf(c) is not False]
        if not conds:
            continue
        out.extend((fact, cond) for cond in conds)
        spec = trial.facts[fact]
        if spec.derived_by is not None:
            derivation = next(d for d in trial.derivations if d.id == spec.derived_by)
            for name in derivation.inputs:
                if name not in by_fact:
                    by_fact[name] = [_all([cond, kleene.absent(name)]) for cond in conds]
                    pending.append(name)
    return out


def _criterion_rules(trial: Trial, criterion: Criterion, condition: Any,
                     kleene: _Kleene) -> dict[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {}
    for part in parts_of(condition):
        # a part is decided once per snapshot, after the parts inside it
        ready = [kleene.absent_field(part.field)] + [
            {"$ex": {inner.field: 1}} for inner in parts_of(part.expr)]
        for outcome, cond in kleene.outcomes(part.expr):
            rules[f"{part.name}.{outcome}"] = _rule(SNAPSHOT, _all(ready + [cond]), PRI_PART)
    for outcome, cond in kleene.outcomes(condition):
        rules[f"{criterion.id}.{outcome}"] = _rule(SNAPSHOT, cond, PRI_CRITERION)
    if criterion.ask:
        seen: dict[str, int] = {}
        for fact, cond in missing_conditions(trial, criterion, condition, kleene):
            seen[fact] = seen.get(fact, 0) + 1
            suffix = "" if seen[fact] == 1 else f".{seen[fact]}"
            rules[f"{criterion.id}.missing.{fact}{suffix}"] = _rule(SNAPSHOT, cond, PRI_MISSING)
    return rules


def lower_criteria(trial: Trial) -> tuple[dict[str, Any], dict[str, Term]]:
    """Each criterion's condition with its hidden terms in place, and the terms by name
    (equal expressions share one term, e.g. a definition used by two criteria)."""
    by_expr: dict[Any, Term] = {}
    never = frozenset(name for name, spec in trial.facts.items() if Special.NEVER in spec.special)
    alone = settling_alone(trial.facts)
    ranged = ranged_facts(trial)
    lowered = {c.id: lower(c.condition, by_expr, never, alone, ranged) for c in trial.criteria}
    return lowered, {term.name: term for term in by_expr.values()}


# A rule fires once for every way its $or clauses match: one alternative of each clause
# that holds. Where that can be more than this many times, a shape cut into Parts is taken
# (when one fits): every firing is an engine round trip, and the repeats tell nothing new.
MAX_FAN_OUT = 512


def fan_out(rule: dict[str, Any]) -> int:
    """How many times the rule can fire on one snapshot, at most: the product over its $or
    clauses of how many of their tests can hold together (equalities of one field exclude
    each other, and an absence test excludes every other test of its field)."""
    times = 1
    for element in _elements(rule):
        if "$or" not in element:
            continue
        by_field: dict[str, list[int]] = {}  # field -> [equalities, absence tests, others]
        for leaf in element["$or"]:
            name, op = _test_of(leaf)
            by_field.setdefault(name, [0, 0, 0])[0 if op == "==" else 1 if op == "$nex" else 2] += 1
        times *= sum(max(min(equal, 1) + other, absent) for equal, absent, other in by_field.values())
    return times


MAX_PLAIN_DEPTH = 6   # deeper conditions are cut into Parts at once
MAX_PLAIN_SIZE = 96   # so are conditions with more operators and tests than this


def _shape_of(e: Any) -> tuple[int, int]:
    """(nesting depth, number of operators and tests) of an expression, without recursion."""
    depth = size = 0
    pending: list[tuple[Any, int]] = [(e, 1)]
    while pending:
        node, level = pending.pop()
        size += 1 + (len(node.values) // MAX_OR_WIDTH if isinstance(node, In) else 0)
        depth = max(depth, level)
        if isinstance(node, Not):
            pending.append((node.operand, level + 1))
        elif isinstance(node, (And, Or)):
            pending.extend((o, level + 1) for o in node.operands)
    return depth, size


def _fitted_rules(trial: Trial, criterion: Criterion, lowered: Any, kleene: _Kleene
                  ) -> tuple[Any, dict[str, dict[str, Any]]]:
    """The criterion's (lowered) condition and rules, cut into Parts as far as the engine needs.

    First as written; then wide and/or split into Parts of 8, 4, 2 operands; last every
    and/or below the top a Part of its own, which fits any condition. Raises RulesError
    only if even that does not fit (a single test too large for the engine).
    """
    attempts: list[Callable[[], Any]] = []
    depth, size = _shape_of(lowered)
    if depth <= MAX_PLAIN_DEPTH and size <= MAX_PLAIN_SIZE:
        # the three-valued conditions of a whole expression grow quickly with its nesting
        attempts.append(lambda: lowered)
        attempts += [lambda w=w: split(lowered, criterion.id, w) for w in (8, 4, 2)]
    attempts += [lambda w=w, d=d: decompose(lowered, criterion.id, w, d)
                 for w, d in ((4, 3), (4, 2), (4, 1), (2, 1))]
    fitting: tuple[int, Any, dict[str, dict[str, Any]]] | None = None
    for attempt in attempts:
        condition = attempt()
        try:
            own = _criterion_rules(trial, criterion, condition, kleene)
        except TooComplex:
            continue
        try:
            _shape(own)
        except TooComplex:
            continue
        times = max(map(fan_out, own.values()))
        if times <= MAX_FAN_OUT:
            return condition, own
        if fitting is None or times < fitting[0]:
            fitting = (times, condition, own)
    if fitting is not None:
        return fitting[1], fitting[2]  # none fires few times: the one that fires fewest
    span = criterion.span
    raise RulesError([RuleProblem(span.path, span.line, span.column, "too-complex",
                                  f"criterion {criterion.id}: the condition is too large for "
                                  "the engine even cut into parts")])


def compile_trial(trial: Trial) -> tuple[dict[str, dict[str, Any]], dict[str, Part]]:
    """Return one ruleset definition (rule name -> durable-rules rule) and the parts used.

    For a trial too large for one ruleset use `compile_rulesets`; this is its only ruleset
    when there is one. Raises RulesError when a criterion cannot be made to fit.
    """
    rulesets = compile_rulesets(trial)
    if len(rulesets) != 1:
        raise TooComplex(f"{len(rulesets)} rulesets needed")
    return rulesets[0]


def compile_rulesets(trial: Trial) -> list[tuple[dict[str, dict[str, Any]], dict[str, Part]]]:
    """Compile the trial into durable-rules ruleset definitions and the parts each uses.

    Rule names: `open`, `derive.<id>`, `seal` (or `seen` without derivations), `<criterion>.<outcome>`,
    `<criterion>.missing.<fact>[.<n>]`, and for conditions cut into parts
    `<criterion>.partN.<outcome>` and `seal.parts`. Conditions too large for one rule are cut
    into parts (`_fitted_rules`); a ruleset whose network would overflow the engine's node
    tables or matching stack is regrouped (`_shape`); criteria past the engine's rule count
    go to further rulesets, each with the derivations. The order is stable (trial order), so
    firing order is deterministic. Raises RulesError when a criterion cannot be made to fit.
    """
    kleene = _Kleene(trial)
    base: dict[str, dict[str, Any]] = {"open": _rule(OPEN, True, PRI_OPEN)}
    alone = settling_alone(trial.facts)
    for derivation in trial.derivations:
        not_done = {"$nex": {DONE_PREFIX + derivation.id: 1}}
        absent: list[list[Cond]] = []
        if derivation.formula is not None:
            alternatives = needs(derivation.formula, alone)
        elif derivation.function == "banded_score" and len(derivation.inputs) > 1:
            # a score may be settled by some of its parts (`banded_score_settled`): besides
            # all parts present, a part present whose next one (cyclically) is absent -- some
            # such pair exists whenever some parts are known and some not, and a candidate
            # with every part fires the one rule only
            parts = derivation.inputs
            alternatives = (parts,) + tuple((name,) for name in parts)
            absent = [[]] + [[kleene.absent(parts[(i + 1) % len(parts)])] for i in range(len(parts))]
        else:
            alternatives = (derivation.inputs,)
        for index, need in enumerate(alternatives):
            inputs = [kleene.present(name) for name in need] + (absent[index] if absent else [])
            suffix = f".{index}" if index else ""
            base[f"derive.{derivation.id}{suffix}"] = _rule(SNAPSHOT, _all(inputs + [not_done]), PRI_DERIVE)
    lowered, terms = lower_criteria(trial)
    for term in terms.values():
        # a term is computed by the action of this rule, once its inputs are present
        for index, need in enumerate(term.needs):
            inputs = [kleene.present(name) for name in need]
            suffix = f".{index}" if index else ""
            base[f"term.{term.name}{suffix}"] = _rule(
                SNAPSHOT, _all(inputs + [{"$nex": {term.done: 1}}]), PRI_DERIVE)
    sealed = bool(trial.derivations or terms)
    # Derivations and terms read unsealed snapshots only: a snapshot is sealed once none of
    # them may fire anew (screener.engine), so a sealed snapshot need not carry what they
    # read, nor their done marks, and the engine is done with all of them at one test.
    for name in base:
        if name.startswith(("derive.", "term.")):
            base[name] = _marked(base[name], unless=SEALED)
    if sealed:
        # After the derivations that a snapshot triggered, one action replaces the snapshot
        # with the derived values added; the criteria then fire on the new snapshot only.
        # The first snapshot is always replaced, marked as sealed, and every later rule
        # tests the mark first: the engine does not match the criteria against a snapshot
        # that is about to go (half of its matching work, before). Parts read sealed
        # snapshots; the criteria and their missing facts read the final one alone, marked
        # once no derivation, term or part is left to run (screener.engine): a trial whose
        # derived facts feed other derivations, or whose parts nest, takes several
        # snapshots, and the criteria are matched against the last only.
        # The seal reads unsealed snapshots only: on a sealed one no derivation or term is
        # left to fire, so the parts' seal and `seen` consume it.
        base["seal"] = _marked(_rule(SNAPSHOT, True, PRI_SEAL), unless=SEALED)
    # The last rule to fire on the snapshot the criteria read, after their rules and their
    # missing facts': a candidate who passes every criterion fires no rule of its criteria
    # (`_implied_rule`), so the engine checks that this one fired before it infers any
    # passing outcome, and an engine that stopped firing midway fails the candidate instead
    # of passing it. Without a seal it also consumes every snapshot (durable-rules refuses
    # a fact that no rule matches; the seal does, when there is one).
    base["seen"] = _after_seal(_rule(SNAPSHOT, True, PRI_SEEN), sealed, FINAL)
    # sid, id and kind; the sealed and final marks; a fact's value or its `never` marker (a
    # fact that may be a range: its two ends, screener.rules.ranged); a derivation's done
    # marker; a term's value or range, its `never` marker and its done marker; then a field
    # per Part
    fields = 3 + 2 * sealed + len(trial.facts) + len(kleene.ranged) + len(trial.derivations) \
        + 3 * len(terms)
    if fields > MAX_FIELDS:
        raise RulesError([RuleProblem(trial.path, 1, 1, "too-large",
                                      f"{len(trial.facts)} facts, {len(trial.derivations)} derivations "
                                      f"and {len(terms)} computed comparisons need {fields} fields in "
                                      f"one engine fact; durable-rules takes at most {MAX_FIELDS}")])
    shards: list[tuple[dict[str, dict[str, Any]], dict[str, Part]]] = []
    rules: dict[str, dict[str, Any]] = dict(base)
    parts: dict[str, Part] = {}
    absence_first: set[str] = set()  # rules whose absence tests may go first (`_absence_first`)

    def close() -> None:
        if parts:
            # After the parts, the snapshot is replaced once more with their outcomes added.
            # (not on the final snapshot: every part is decided by then)
            rules["seal.parts"] = _after_seal(_rule(SNAPSHOT, True, PRI_SEAL_PARTS), sealed)
        reordered = {name: _absence_first(rule) if name in absence_first else rule for name, rule in rules.items()}
        for attempt in (reordered, rules):  # as written when the reordered network does not fit
            try:
                shards.append((_shape(attempt), dict(parts)))
                return
            except TooComplex:
                continue
        raise RulesError([RuleProblem(trial.path, 1, 1, "too-complex",
                                      "the criteria do not fit the engine's network")])

    for criterion in trial.criteria:
        condition, own = _fitted_rules(trial, criterion, lowered[criterion.id], kleene)
        more = len(parts_of(condition))
        if fields + more > MAX_FIELDS:
            span = criterion.span
            raise RulesError([RuleProblem(span.path, span.line, span.column, "too-large",
                                          f"criterion {criterion.id}: cut into {more} parts, more "
                                          "than the engine's fact can carry beside the facts")])
        opens = (len(rules) + len(own) > MAX_RULES or fields + len(parts) + more > MAX_FIELDS) \
            and len(rules) > len(base)
        if opens:
            close()
            rules, parts = dict(base), {}
        parts.update({p.name: p for p in parts_of(condition)})
        own_parts = {p.name for p in parts_of(condition)}
        implied = _implied_rule(criterion, own, alone=not opens)
        # a part reads sealed snapshots but the final one (every part is decided by then: its
        # rules, which test that its outcome is absent, could not match it); the criteria
        # and their missing facts read the final one
        rules.update((name, _after_seal(rule, sealed, SEALED if name.rpartition(".")[0] in own_parts else FINAL))
                     for name, rule in own.items() if name != implied)
        absence_first.update(name for name in own if name.endswith(".unknown") or ".missing." in name
                             or name.rpartition(".")[0] in own_parts)
    close()
    return shards


def _tests_absence(element: Any) -> bool:
    return "$nex" in element or ("$or" in element and all("$nex" in leaf for leaf in element["$or"]))


def _absence_first(rule: dict[str, Any]) -> dict[str, Any]:
    """The rule with its tests of absent facts right after the kind (and the snapshot's
    mark): the same condition, tested in another order. An `unknown` rule holds only when
    some fact is absent, which a candidate with every fact answers at its first test
    instead of its last; a part's rules stop at once on the snapshots after the one that
    decided it. Nothing else changes: rules fire in the order of their priorities and
    names, and as many times, whatever the order of their tests."""
    m = rule["all"][0]["m"]
    if "$and" not in m:
        return rule
    kind, *rest = m["$and"]
    marks = [e for e in rest if isinstance(e, dict) and (SEALED in e or FINAL in e)]
    absent = [e for e in rest if e not in marks and _tests_absence(e)]
    if not absent:
        return rule
    others = [e for e in rest if e not in marks and not _tests_absence(e)]
    return {**rule, "all": [{"m": {"$and": [kind, *marks, *absent, *others]}}]}


def passing_outcome(criterion: Criterion) -> str:
    """The outcome that lets a candidate through: met for an inclusion, not met for an exclusion."""
    return "met" if criterion.kind == "inclusion" else "not_met"


def _implied_rule(criterion: Criterion, own: dict[str, dict[str, Any]], alone: bool) -> str | None:
    """The name of the criterion's rule left out of the ruleset: its passing outcome's, when
    another outcome is possible too, or when it is the only one (a criterion always met)
    and `alone` (the criterion does not open a ruleset: see `criteria_of`). The outcome
    rules of a criterion partition every final snapshot, so when none of the others
    fired, the passing one holds. Most criteria of most candidates pass: this spares the
    engine nearly every firing of a criterion, and all the repeats of a passing condition
    with several alternatives (an exclusion's `not met` is an `and` of negations, each
    often an `or`). The criterion is fitted (cut into parts, placed in a ruleset) with all
    its rules, as if none were left out, so that its parts and their firings are the same
    either way."""
    name = f"{criterion.id}.{passing_outcome(criterion)}"
    others = [f"{criterion.id}.{outcome}" for outcome in ("met", "not_met", "unknown")]
    if name in own and (alone or any(other in own for other in others if other != name)):
        return name
    return None


def criteria_of(trial: Trial, definitions: list[dict[str, Any]]) -> list[tuple[Criterion, ...]]:
    """The criteria each ruleset decides, in trial order: those with rules in it, and each
    criterion without any rule (always met, `_implied_rule`) in the ruleset of the criterion
    before it (the first ruleset when there is none): such a criterion never opens a
    ruleset."""
    heads = [{name.partition(".")[0] for name in definition} for definition in definitions]
    out: list[list[Criterion]] = [[] for _ in definitions]
    current = 0
    for criterion in trial.criteria:
        current = next((i for i, names in enumerate(heads) if criterion.id in names), current)
        out[current].append(criterion)
    return [tuple(criteria) for criteria in out]


def _after_seal(rule: dict[str, Any], sealed: bool, mark: str = SEALED) -> dict[str, Any]:
    """The rule, reading only snapshots with `mark` (sealed, or final) when the trial has a
    seal (a part's: sealed and not final)."""
    if not sealed:
        return rule
    return _marked(rule, mark, FINAL if mark == SEALED else None)


def _marked(rule: dict[str, Any], mark: str | None = None, unless: str | None = None) -> dict[str, Any]:
    """The rule, reading only snapshots with `mark` and without `unless`: the marks are
    tested right after the kind, so a snapshot that fails them stops there for every such
    rule (`screener.rules.compile.network` groups the rules by them)."""
    elements = _elements(rule)
    marks = ([] if mark is None else [{mark: 1}]) + ([] if unless is None else [{"$nex": {unless: 1}}])
    return {**rule, "all": [{"m": {"$and": [elements[0], *marks, *elements[1:]]}}]}


def final_fields(rules: dict[str, dict[str, Any]]) -> frozenset[str]:
    """Every field the rules that read only final snapshots (the criteria, their missing
    facts, `seen`) read, tested for absence or not: what a final snapshot must carry. The
    other rules do not read it (`_marked`)."""
    return enabling_fields({name: rule for name, rule in rules.items()
                            if any(isinstance(e, dict) and FINAL in e for e in _elements(rule))}, True, ())


def _elements(rule: dict[str, Any]) -> list[Any]:
    """The tests of a rule's one condition, in order (the kind first)."""
    m = rule["all"][0]["m"]
    return m["$and"] if "$and" in m else [m]


def enabling_fields(rules: dict[str, dict[str, Any]], absence: bool = False,
                    marks: tuple[str, ...] = (SEALED, FINAL)) -> frozenset[str]:
    """The fields whose appearance can make a rule that reads unsealed snapshots (a
    derivation, a term, the seal) match: those its conditions test other than for absence.
    A snapshot that adds none of them cannot fire such a rule anew. With `absence`, also
    those tested for absence: every field such a rule reads, so an unsealed snapshot with
    only these fires the same rules as with all. With `marks` (FINAL,), the same for the
    rules that read any snapshot but a final one (the parts' rules too)."""
    found: set[str] = set()
    for name, rule in rules.items():
        elements = _elements(rule)
        if any(mark in e for e in elements if isinstance(e, dict) for mark in marks):
            continue
        pending: list[Any] = list(elements)
        while pending:
            element = pending.pop()
            if isinstance(element, list):
                pending.extend(element)
                continue
            for key, value in element.items():
                if key == "$nex" and not absence:
                    continue
                if key in ("$and", "$or"):
                    pending.extend(value)
                elif key.startswith("$") and isinstance(value, dict):
                    found.update(value)
                    if absence:  # the other field of a comparison between two fields
                        pending.extend(v for v in value.values() if isinstance(v, dict))
                elif key == "$m":
                    found.add(value)
                else:
                    found.add(key)
    return frozenset(found)
