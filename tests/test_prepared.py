"""Prepared expressions (screener.rules.prepared) give what walking the expression tree
gives, for every hidden term and formula of every shipped trial and every part of them.

Candidates are drawn at random from each trial's own rules (benchmarks/candidates.py): any
mix of absent, valid and invalid facts, nearly complete ones at the thresholds, and ones
with ranges (censored results, month-year dates). Each is read as batch reads it, screened
once for its derived facts, and then every term, formula and sub-expression is evaluated
both ways on its facts before and after derivation: the same value, the same `never`,
unknown or failure, the same exception.
"""
from __future__ import annotations

import dataclasses
import decimal
from decimal import Decimal
import random
import sys
from functools import lru_cache
from typing import Any

import pytest

from screener.engine import Screener
from screener.model import Aggregate
from screener.rules.check import load_trial
from screener.rules.compile.rules import lower_criteria
from screener.rules.evaluate import _CONTEXT, Evaluator
from screener.rules.formulas import derive
from screener.rules.terms import compute
from screener.run.batch import candidate_facts
from screener.sources.readers import Row

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from candidates import ADVERSARIAL, Profile, RandomChooser, generator_for  # noqa: E402

TRIALS = sorted(p.stem for p in (ROOT / "rules").glob("*.yaml") if not p.name.endswith(".cases.yaml"))
NEAR = Profile(absent=(0.0, 0.03), passing=(0.95, 0.99), invalid=0.0, native=True, consistent=False)
RANGED = Profile(absent=(0.0, 0.03), passing=(0.95, 0.99), invalid=0.0, native=True, consistent=False,
                 ranged=0.3)
PER_PROFILE = 25  # candidates per trial and profile


@lru_cache(maxsize=None)
def _trial(trial_id: str) -> Any:
    trial = load_trial(ROOT / "rules" / f"{trial_id}.yaml")
    return trial, Screener(trial), lower_criteria(trial)[1]


def _outcome(function: Any, *args: Any) -> Any:
    """What a call gives, or the exception it raises, in a form compared exactly (a Decimal
    by its digits, so that 2.0 and 2 differ)."""
    try:
        with decimal.localcontext(_CONTEXT):
            got = function(*args)
    except Exception as exc:  # the same exception either way
        return ("raised", type(exc), str(exc))
    return repr(got)


def _parts(e: Any, scope: str | None = None) -> list[tuple[Any, str | None]]:
    """Every sub-expression of `e` with the list its items are read from (None outside)."""
    out = [(e, scope)]
    inner = e.fact if isinstance(e, Aggregate) else scope
    for field in dataclasses.fields(e):
        value = getattr(e, field.name)
        for child in value if isinstance(value, tuple) else (value,):
            if dataclasses.is_dataclass(child) and not isinstance(child, type):
                out.extend(_parts(child, inner))
    return out


def _snapshots(trial_id: str, profile: Profile, seed: int) -> list[dict[str, Any]]:
    trial, screener, _ = _trial(trial_id)
    generator = generator_for(ROOT / "rules" / f"{trial_id}.yaml")
    chooser = RandomChooser(random.Random(seed))
    out = []
    for n in range(PER_PROFILE):
        cand = generator.candidate(chooser, profile, f"c{n}")
        facts, _ = candidate_facts(trial, Row(n + 1, dict(cand.fields)))
        out.append(facts)
        try:
            out.append({**facts, **screener.evaluate(dict(facts)).derived})
        except Exception:  # an error candidate: its given facts are checked all the same
            pass
    return out


@pytest.mark.parametrize("trial_id", TRIALS)
@pytest.mark.parametrize("profile", [ADVERSARIAL, NEAR, RANGED], ids=["any", "near", "ranged"])
def test_prepared_expressions_give_what_the_tree_gives(trial_id, profile):
    trial, _, terms = _trial(trial_id)
    prepared, walked = Evaluator(trial.facts), Evaluator(trial.facts, prepared=False)
    formulas = [d for d in trial.derivations if d.formula is not None]
    parts = [part for term in terms.values() for part in _parts(term.expr)]
    parts += [part for d in formulas for part in _parts(d.formula)]
    if not parts:
        return  # a trial whose conditions the engine compares alone
    checked = 0
    for values in _snapshots(trial_id, profile, seed=sum(map(ord, trial_id))):
        for term in terms.values():
            assert _outcome(compute, term, prepared, values) == _outcome(compute, term, walked, values), \
                (term.name, values)
        for d in formulas:
            spec = trial.facts[d.fact]
            assert _outcome(derive, prepared, d, spec, values) == _outcome(derive, walked, d, spec, values), \
                (d.id, values)
        for e, scope in parts:
            items = [None] if scope is None else (values.get(scope) or [])
            fields = None if scope is None else walked.item_specs(scope)
            for item in items:
                for kind in ("value_of", "truth_of"):
                    if kind == "truth_of" and type(e).__name__ in ("Number", "Duration", "Literal", "Arith",
                                                                    "Scale", "Neg"):
                        continue  # not conditions
                    got = _outcome(getattr(prepared, kind)(e), values, item, fields)
                    want = _outcome(getattr(walked, kind)(e), values, item, fields)
                    assert got == want, (e, item, values)
                    checked += 1
    assert checked


def test_a_power_remembered_is_the_power_computed_afresh():
    """QTcF's cube root and eGFR's creatinine ratio are kept between candidates: the base
    written otherwise (1.2, 1.20), another precision or rounding, or a context that traps
    rounding must each get what `**` gives there, to the last digit and exponent."""
    from screener.rules import evaluate

    rng = random.Random(11)
    cases = [(Decimal(t), Decimal(e)) for t in ("1.2", "1.20", "0.857", "0.8570", "4", "4.0", "1E+1", "10")
             for e in ("0.3333333333333333333333333333333333", "-0.302", "-1.200", "2", "0.5")]
    cases += [(Decimal(rng.randint(1, 4000)) / Decimal(rng.choice((10, 100, 1000))),
               Decimal(rng.choice(("-0.241", "-0.302", "0.5", "-1.2")))) for _ in range(200)]
    contexts = [_CONTEXT, decimal.Context(prec=12, rounding=decimal.ROUND_DOWN),
                decimal.Context(prec=34, traps=[decimal.Inexact])]
    for _ in range(2):  # the second time round from what the first kept
        for base, exponent in cases:
            for context in contexts:
                with decimal.localcontext(context):
                    try:
                        want = base ** exponent
                    except decimal.Inexact:
                        with pytest.raises(decimal.Inexact):
                            evaluate._power(base, exponent)
                        continue
                    got = evaluate._power(base, exponent)
                assert str(got) == str(want), (base, exponent, context)
