"""One test per durable-rules 2.0.28 trap that applies to us (shared notes/durable-rules.md)."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading

import pytest

from screener.run.batch import candidate_facts, screen_row
from screener.rules.compile import KIND, MAX_FAN_OUT, compile_rulesets, compile_trial, fan_out
from screener.errors import ConflictError
from screener.sources.readers import Row

from screener.engine import Screener
from screener.rules.check import load_trial

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from candidates import ADVERSARIAL, REALISTIC, generator_for  # noqa: E402

SHIPPED = sorted(p.stem for p in (ROOT / "rules").glob("*.yaml") if not p.name.endswith(".cases.yaml"))


def _walk(cond):
    if isinstance(cond, dict):
        for key, value in cond.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(cond, list):
        for item in cond:
            yield from _walk(item)


def test_no_background_threads(screener):
    before = threading.active_count()
    screener.evaluate({"ecog": 1})
    assert threading.active_count() == before


def test_every_rule_reads_one_fact_and_tests_its_kind(trial):
    """No cross-fact comparisons (segfault), no kind-less condition (hang), no any/$div."""
    for name, rule in compile_trial(trial)[0].items():
        assert list(rule) == ["all", "pri"], name
        assert len(rule["all"]) == 1, name
        condition = rule["all"][0]["m"]
        tests_kind = condition.get(KIND) or any(
            isinstance(part, dict) and KIND in part for part in condition.get("$and", [])
        )
        assert tests_kind, name
        keys = {key for key, _ in _walk(condition)}
        assert not keys & {"$div", "$l", "$r", "$add", "$sub", "$mul", "$mt", "$imt"}, name
        assert 0 <= rule["pri"] < 65535, name


def test_a_rule_counts_each_way_its_alternatives_can_hold_together():
    """A rule fires once per combination of matching alternatives, one from each $or."""
    rule = {"all": [{"m": {"$and": [
        {KIND: "facts"},
        {"$or": [{"f_a": True}, {"f_a": False}, {"$nex": {"f_a": 1}}]},  # one holds at a time
        {"$or": [{"$nex": {"f_b": 1}}, {"$nex": {"f_c": 1}}, {"$lt": {"f_b": 3}}]},  # two can
        {"$or": [{"$lt": {"f_d": 3}}, {"$lt": {"f_d": 5}}, {"$gt": {"f_e": 0}}]},  # three can
    ]}}], "pri": 5}
    assert fan_out(rule) == 6


@pytest.mark.parametrize("trial_id", SHIPPED)
def test_no_rule_of_a_shipped_trial_repeats_itself_thousands_of_times(trial_id):
    """Every repeat is a round trip through the engine that tells nothing new: NCT06898385's
    E16 unknown rule could fire 419,904 times on one snapshot (some 140 for an average
    candidate). A condition whose rules could repeat more than MAX_FAN_OUT times is cut
    into parts; where no cut gets under it (aggregates over lists), the cut with the fewest
    repeats is taken. fan_out is an upper bound: tests that hold together in a few
    candidates only."""
    trial = load_trial(ROOT / "rules" / f"{trial_id}.yaml")
    worst = max((fan_out(rule), name) for definition, _ in compile_rulesets(trial)
                for name, rule in definition.items())
    assert worst[0] <= 4 * MAX_FAN_OUT, worst


def test_more_sessions_than_the_engine_ceiling(screener):
    """1,024 live sessions is the ceiling: candidates never leave a session each behind."""
    for i in range(3000):
        result = screener.evaluate({"ecog": i % 5})
        assert result.outcomes["I5"] == ("met" if i % 5 < 2 else "not_met")


def test_candidate_whose_facts_match_nothing_is_deleted_safely(screener):
    """delete_state after no action segfaults: a session with no facts at all still works."""
    for _ in range(50):
        assert screener.evaluate({}).decision == "undetermined"


def test_candidates_never_share_facts(screener):
    """Sessions keyed by a 32-bit hash once mixed two patients: one live session at a time."""
    first = screener.evaluate({"ecog": 3, "birth_date": dt.date(1990, 1, 1), "screening_date": dt.date(2024, 1, 1)})
    second = screener.evaluate({"ecog": 0})
    assert first.outcomes["I5"] == "not_met" and first.outcomes["I3"] == "met"
    assert second.outcomes["I5"] == "met" and second.outcomes["I3"] == "unknown"
    assert second.derived == {}


@pytest.mark.parametrize("trial_id", SHIPPED)
def test_a_candidate_is_decided_the_same_whoever_came_before(trial_id):
    """The engine's session is kept from one candidate to the next (creating one costs as
    much as deciding a candidate): what one candidate leaves must never reach another. The
    same candidates, screened forwards and backwards, get the same results, firings included."""
    trial = load_trial(ROOT / "rules" / f"{trial_id}.yaml")
    screener = Screener(trial)
    generator = generator_for(ROOT / "rules" / f"{trial_id}.yaml")
    rows = [Row(i, dict(c.fields)) for profile, seed in ((REALISTIC, 3), (ADVERSARIAL, 4))
            for i, c in enumerate(generator.candidates(seed, 60, profile), 1)]

    def screened(row: Row):
        result = screen_row(trial, screener, row)
        return result.record, result.result

    forwards = [screened(row) for row in rows]
    backwards = [screened(row) for row in reversed(rows)][::-1]
    assert forwards == backwards
    assert {record["decision"] for record, _ in forwards} >= {"ineligible", "undetermined", "error"}


def test_a_candidate_after_a_failed_one_is_decided_as_alone(screener):
    """A derivation that conflicts with a given fact stops the candidate mid-session; the
    next candidate must not meet its facts or its pending rules."""
    dates = {"birth_date": dt.date(1960, 1, 1), "screening_date": dt.date(2024, 1, 1)}
    alone = screener.evaluate({"ecog": 0, **dates})
    for _ in range(3):
        with pytest.raises(ConflictError):
            screener.evaluate({"age": 30, "ecog": 3, **dates})
        assert screener.evaluate({"ecog": 0, **dates}) == alone
    assert screener.evaluate({}).derived == {}


def test_same_facts_twice_is_not_a_duplicate_assert(screener):
    facts = {"ecog": 1, "asa_class": 2}
    assert screener.evaluate(facts) == screener.evaluate(facts)


def test_ids_with_quotes_and_backslashes_are_harmless(trial, screener):
    for candidate_id in ['a"b', "c\\d", "e'f", "𝔤\u0000h"]:
        record = screen_row(trial, screener, Row(1, {"candidate_id": candidate_id, "ecog": "3"})).record
        assert record["candidate_id"] == candidate_id
        assert record["decision"] == "ineligible"


@pytest.mark.parametrize("value", ["abc", "18.5", "", " ", "1e1", "true"])
def test_mixed_types_never_reach_the_engine(trial, screener, value):
    """durable-rules compares "abc" >= 18 as true: values are typed before they are asserted."""
    record = screen_row(trial, screener, Row(1, {"candidate_id": "x", "age": value})).record
    if value.strip() == "":
        assert record["decision"] == "undetermined"
    else:
        assert record["decision"] == "error"
        assert record["errors"][0].startswith(f"age: {value!r}")


@pytest.mark.parametrize("value", ["1e-05", "0.00001", "inf", "nan", "-inf", "1e400"])
def test_floats_the_engine_cannot_take_are_errors(trial, screener, value):
    """Exponent floats raise error 204 and inf crashes: they are refused by name first."""
    record = screen_row(trial, screener, Row(1, {"candidate_id": "x", "inr": value})).record
    assert record["decision"] == "error"
    assert record["errors"][0].startswith(f"inr: {value!r}")


def test_decimals_compare_exactly_at_band_edges(screener):
    """Decimals go to the engine as scaled integers: 34.2 is 3420, never 34.19999."""
    parts = {"albumin_g_l": 40.0, "inr": 1.0, "ascites": "none", "encephalopathy": "none"}
    assert screener.evaluate({**parts, "bilirubin_umol_l": 34.2}).derived["child_pugh_class"] == "A"
    assert screener.evaluate({**parts, "bilirubin_umol_l": 34.2, "albumin_g_l": 35.0}).derived[
        "child_pugh_class"] == "B"


def test_a_conflict_in_a_derivation_is_raised_not_swallowed(screener):
    with pytest.raises(ConflictError) as info:
        screener.evaluate({"age": 30, "birth_date": dt.date(1960, 1, 1), "screening_date": dt.date(2024, 1, 1)})
    assert info.value.fact == "age" and info.value.derived == 64


def test_derivations_fire_before_criteria_and_each_criterion_fires_once(screener):
    result = screener.evaluate({"birth_date": dt.date(1960, 1, 1), "screening_date": dt.date(2024, 1, 1)})
    rules = [f.rule for f in result.firings]
    assert rules[0] == "derive.D-age"
    criteria = [f.criterion for f in result.firings if f.criterion]
    assert len(criteria) == len(set(criteria)) == 17
    assert result.outcomes["I3"] == "met"


def test_firing_order_is_the_same_whatever_the_hash_seed():
    script = (
        "import datetime as dt, json\n"
        "from screener.rules.check import load_trial\nfrom screener.engine import Screener\n"
        f"s = Screener(load_trial({str(ROOT / 'rules' / 'NCT03862768.yaml')!r}))\n"
        "r = s.evaluate({'ecog': 1, 'sex': 'female', 'bilirubin_umol_l': 20.0, 'albumin_g_l': 40.0,"
        " 'inr': 1.0, 'ascites': 'none', 'encephalopathy': 'none'})\n"
        "print(json.dumps([f.rule for f in r.firings] + list(r.missing)))\n"
    )
    runs = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, cwd=ROOT).stdout
        for seed in ("0", "1", "12345")
    }
    assert len(runs) == 1
    assert json.loads(runs.pop())[0] == "derive.D-child-pugh"


@pytest.mark.parametrize("trial_id", SHIPPED)
def test_an_engine_that_stops_firing_midway_fails_the_candidate_instead_of_passing_them(trial_id, monkeypatch):
    """A criterion passes when none of its other rules fires: were the engine to stop handing
    out actions before the last rule on the final snapshot (an action lost, a session
    stalled), the criteria left unfired would read as passed. Each candidate stops at its
    first criterion rule here; every one is refused with an engine error, none is decided."""
    import screener.engine as engine
    from screener.errors import EngineError

    trial = load_trial(ROOT / "rules" / f"{trial_id}.yaml")
    screener = Screener(trial, firings=False)
    criteria = {c.id for c in trial.criteria}
    real = engine._dre.complete_and_start_action

    def stopping(handle, state):
        message = real(handle, state)
        if message and message[2:message.find('"', 2)].partition(".")[0] in criteria:
            while real(handle, state):  # the rest of the snapshot's actions are lost
                pass
            return None
        return message

    generator = generator_for(ROOT / "rules" / f"{trial_id}.yaml")
    failing = 0
    for cand in generator.candidates(11, 60, REALISTIC):
        facts, errors = candidate_facts(trial, Row(1, dict(cand.fields)))
        try:
            decided = screener.evaluate(dict(facts))
        except ConflictError:
            continue
        if decided.failed and not errors:
            failing += 1
            monkeypatch.setattr(engine._dre, "complete_and_start_action", stopping)
            with pytest.raises(EngineError):
                screener.evaluate(dict(facts))
            monkeypatch.setattr(engine._dre, "complete_and_start_action", real)
            assert screener.evaluate(dict(facts)) == decided  # the next candidate is decided as before
    assert failing
