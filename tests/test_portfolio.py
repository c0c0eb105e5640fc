"""A site's portfolio: its own trials beside the shipped ones, screened and ranked together."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from screener.cli import main

from conftest import ROOT, TRIAL

SITE = ROOT / "tests" / "data" / "site" / "rules"
SITE_TRIAL = "SITE-2"


def _shipped_row(candidate_id: str) -> dict[str, str]:
    """A candidate of the shipped sample, as its CSV row."""
    with (ROOT / "examples" / "candidates.csv").open(encoding="utf-8") as f:
        return next(r for r in csv.DictReader(f) if r["candidate_id"] == candidate_id)


def _candidates(path: Path) -> Path:
    eligible = _shipped_row("ZS-001")  # eligible for the shipped trial; no haemoglobin
    rows = [
        {"candidate_id": "P1", "ecog": "1", "sex": "male", "hemoglobin": "12", "informed_consent": "yes",
         "shoe_size": "44"},
        {"candidate_id": "P2", "ecog": "3", "sex": "female", "pregnant": "yes", "hemoglobin": "10",
         "informed_consent": "yes"},
        {"candidate_id": "P3", "ecog": "0", "hemoglobin": "lots", "shoe_size": "41"},
        eligible,
    ]
    names = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, names)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_site_trial_beside_the_shipped_one_gives_a_record_per_candidate_per_trial(tmp_path, capsys):
    out = tmp_path / "out.csv"
    status = main(["batch", str(_candidates(tmp_path / "c.csv")), "-o", str(out), "--rules-dir", str(SITE),
                   "--trial", SITE_TRIAL, "--trial", TRIAL])
    assert status == 1  # P3's haemoglobin is an error for the site trial
    with out.open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["candidate_id", "trial_id", "decision", "failed_criteria", "missing", "errors", "warnings", "screening_log"]
    assert [(r[0], r[1], r[2], r[3]) for r in rows[1:]] == [
        ("P1", SITE_TRIAL, "eligible", ""),
        ("P1", TRIAL, "undetermined", ""),
        ("P2", SITE_TRIAL, "ineligible", "S-I1;S-E1"),
        ("P2", TRIAL, "ineligible", "I5;E6"),
        ("P3", SITE_TRIAL, "error", ""),
        ("P3", TRIAL, "undetermined", ""),
        ("ZS-001", SITE_TRIAL, "undetermined", ""),
        ("ZS-001", TRIAL, "eligible", ""),
    ]
    assert rows[5][5] == "hemoglobin: 'lots': expected a number"
    assert rows[7][4] == "hemoglobin"
    err = capsys.readouterr().err
    # a field of one trial is not "unknown"; one that belongs to none is reported once
    assert err.count("shoe_size") == 1 and "hemoglobin" not in err.split("ignored:")[1].split("\n")[0]
    assert f"{SITE_TRIAL}: 4 screened" in err and f"{TRIAL}: 4 screened" in err
    assert "failed S-I1" in err and "failed I5" in err


def test_without_trial_every_trial_found_is_screened_in_search_order(tmp_path):
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(_candidates(tmp_path / "c.csv")), "-o", str(out), "--rules-dir", str(SITE)]) == 1
    records = _jsonl(out)
    ids = [t.stem for t in sorted((ROOT / "rules").glob("*.yaml")) if "." not in t.stem and t.stem != SITE_TRIAL]
    assert [r["trial_id"] for r in records[:1 + len(ids)]] == [SITE_TRIAL, *ids]
    assert len(records) == 4 * (1 + len(ids))
    assert list(records[0]) == ["candidate_id", "trial_id", "decision", "failed_criteria", "missing", "errors", "warnings", "screening_log"]


def test_one_trial_chosen_keeps_the_single_trial_contract(tmp_path):
    out = tmp_path / "out.csv"
    main(["batch", str(_candidates(tmp_path / "c.csv")), "-o", str(out), "--rules-dir", str(SITE),
          "--trial", SITE_TRIAL])
    with out.open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["candidate_id", "decision", "failed_criteria", "missing", "errors", "warnings", "screening_log"]
    assert [r[:2] for r in rows[1:]] == [["P1", "eligible"], ["P2", "ineligible"], ["P3", "error"],
                                         ["ZS-001", "undetermined"]]


def test_several_processes_give_the_same_records_in_the_same_order(tmp_path):
    candidates = _candidates(tmp_path / "c.csv")
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}.jsonl"
        done = subprocess.run([sys.executable, "-m", "screener", "batch", str(candidates), "-o", str(out),
                               "--rules-dir", str(SITE), "--trial", SITE_TRIAL, "--trial", TRIAL, "--jobs", jobs],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stderr
        outs.append(out.read_text(encoding="utf-8"))
    assert outs[0] == outs[1] and outs[0].count("\n") == 8


def test_traces_of_several_trials_go_to_a_folder_per_trial(tmp_path):
    traces = tmp_path / "traces"
    main(["batch", str(_candidates(tmp_path / "c.csv")), "-o", str(tmp_path / "o.jsonl"), "--rules-dir", str(SITE),
          "--trial", SITE_TRIAL, "--trial", TRIAL, "--traces", str(traces)])
    site = sorted(p.name.split(".")[0].split("-")[0].upper() for p in (traces / SITE_TRIAL).iterdir())
    shipped = sorted(p.name.split(".")[0].split("-")[0].upper() for p in (traces / TRIAL).iterdir())
    assert site == ["P1", "P2", "ZS"] and shipped == ["P1", "P2", "P3", "ZS"]  # no trace for an error
    trace = next((traces / SITE_TRIAL).glob("p1*"))
    verified = subprocess.run([sys.executable, "-m", "screener", "verify", str(trace), "--rules-dir", str(SITE)],
                              capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # a site's trials on SCREENER_TRIALS_PATH are found by verify as by batch, without --rules-dir
    env = {**os.environ, "SCREENER_TRIALS_PATH": str(SITE)}
    verified = subprocess.run([sys.executable, "-m", "screener", "verify", str(trace)],
                              capture_output=True, text=True, timeout=60, env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    env.pop("SCREENER_TRIALS_PATH")
    unfound = subprocess.run([sys.executable, "-m", "screener", "verify", str(trace)],
                             capture_output=True, text=True, timeout=60, env=env)
    assert unfound.returncode == 1 and "name one with --rules or its directory with --rules-dir" in unfound.stderr


def test_match_ranks_each_candidates_trials_best_prospect_first(tmp_path):
    out = tmp_path / "match.jsonl"
    assert main(["match", str(_candidates(tmp_path / "c.csv")), "-o", str(out), "--rules-dir", str(SITE),
                 "--trial", TRIAL, "--trial", SITE_TRIAL]) == 1
    ranked = [(r["candidate_id"], r["rank"], r["trial_id"], r["decision"]) for r in _jsonl(out)]
    assert ranked == [
        # eligible first, whatever the order the trials were named in
        ("P1", 1, SITE_TRIAL, "eligible"), ("P1", 2, TRIAL, "undetermined"),
        # both ineligible: fewer failed criteria first, ties in trial order
        ("P2", 1, TRIAL, "ineligible"), ("P2", 2, SITE_TRIAL, "ineligible"),
        # an error ranks last
        ("P3", 1, TRIAL, "undetermined"), ("P3", 2, SITE_TRIAL, "error"),
        ("ZS-001", 1, TRIAL, "eligible"), ("ZS-001", 2, SITE_TRIAL, "undetermined"),
    ]


def test_match_puts_the_undetermined_trial_with_fewest_missing_answers_first(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"candidate_id": "Q", "ecog": 0, "informed_consent": True}) + "\n", encoding="utf-8")
    out = tmp_path / "match.csv"
    assert main(["match", str(path), "-o", str(out), "--rules-dir", str(SITE), "--trial", TRIAL,
                 "--trial", SITE_TRIAL]) == 0
    with out.open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["candidate_id", "rank", "trial_id", "decision", "failed_criteria", "missing", "errors", "warnings",
                       "screening_log", "prospect", "criteria_settled", "criteria_total"]
    assert [r[:4] for r in rows[1:]] == [["Q", "1", SITE_TRIAL, "undetermined"], ["Q", "2", TRIAL, "undetermined"]]
    assert rows[1][5] == "sex;pregnant;hemoglobin"
    assert len(rows[2][5].split(";")) > 2


def test_trials_lists_every_trial_with_where_it_came_from(tmp_path, capsys, monkeypatch):
    env_dir = tmp_path / "env" / "rules"
    env_dir.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "data" / "toy" / "rules" / "TOY-1.yaml", env_dir)
    shutil.copy(SITE / f"{SITE_TRIAL}.yaml", env_dir)  # also in --rules-dir, which comes first
    monkeypatch.setenv("SCREENER_TRIALS_PATH", str(env_dir))
    assert main(["trials", "--json", "--rules-dir", str(SITE)]) == 0
    captured = capsys.readouterr()
    listed = [json.loads(line) for line in captured.out.splitlines()]
    assert [(t["trial_id"], t["origin"]) for t in listed[:3]] == [
        (SITE_TRIAL, "--rules-dir"), ("TOY-1", "SCREENER_TRIALS_PATH"), (TRIAL, "shipped")]
    shipped = next(t for t in listed if t["trial_id"] == TRIAL)
    assert shipped["languages"] == ["en", "zh"] and shipped["version"] and len(shipped["content_hash"]) == 64
    assert listed[0]["title"] == "Site study of fit adults with enough haemoglobin" and listed[0]["version"] == "3"
    assert f"{env_dir / 'SITE-2.yaml'} is not used: trial SITE-2 is found first in {SITE / 'SITE-2.yaml'}" in captured.err
    assert main(["trials"]) == 0
    text = capsys.readouterr().out
    assert f"TOY-1  version 1  sha256 " in text and f"from SCREENER_TRIALS_PATH: {env_dir / 'TOY-1.yaml'}" in text


def test_check_without_arguments_checks_every_trial_found(tmp_path, capsys):
    site = tmp_path / "rules"
    site.mkdir()
    shutil.copy(SITE / f"{SITE_TRIAL}.yaml", site)
    (site / "BROKEN-1.yaml").write_text(
        (SITE / f"{SITE_TRIAL}.yaml").read_text(encoding="utf-8").replace("when: ecog <= 2", "when: ecgo <= 2"),
        encoding="utf-8")
    assert main(["check", "--rules-dir", str(site)]) == 2
    err = capsys.readouterr().err
    assert f"{site / 'BROKEN-1.yaml'}:" in err and "unknown-fact" in err and "(did you mean 'ecog'?)" in err
    assert f"ok: {SITE_TRIAL}, 4 criteria" in err and f"ok: {TRIAL}" in err


def test_an_unknown_trial_is_a_usage_error_naming_those_found(tmp_path, capsys):
    assert main(["batch", str(_candidates(tmp_path / "c.csv")), "--rules-dir", str(SITE), "--trial", "NOPE"]) == 2
    err = capsys.readouterr().err
    assert "no rules for trial 'NOPE'" in err and SITE_TRIAL in err and TRIAL in err


def test_a_fact_two_trials_declare_otherwise_is_read_by_each_its_own_way(trial):
    """Several trials read a candidate's cell once where they declare the fact alike; where
    one declares it otherwise (here a narrower range), that trial reads it its own way."""
    import dataclasses

    from screener.run.batch import SharedReads, candidate_facts
    from screener.sources.readers import Row

    narrow = dataclasses.replace(trial.facts["ecog"], maximum=1)
    other = dataclasses.replace(trial, id="SITE-NARROW", facts={**trial.facts, "ecog": narrow})
    twin = dataclasses.replace(trial, id="SITE-TWIN", facts=dict(trial.facts))
    trials = [trial, other, twin]
    shared = SharedReads(trials)
    for ecog in ("3", "3", "abc"):
        row = Row(1, {"candidate_id": "P1", "ecog": ecog, "age": "57"})
        alone = [candidate_facts(t, row) for t in trials]
        shared.next_row()
        assert [candidate_facts(t, row, shared=shared) for t in trials] == alone
    row = Row(1, {"candidate_id": "P1", "ecog": "3"})
    shared.next_row()
    assert [candidate_facts(t, row, shared=shared) for t in trials] == [
        ({"ecog": 3}, []), ({}, ["ecog: '3': above the maximum 1"]), ({"ecog": 3}, [])]


def test_a_portfolio_run_reads_a_fact_its_trials_declare_alike_once_per_row(trial, monkeypatch):
    """`screen_portfolio` hands its rows' texts from one trial to the next: a cell of a fact
    every trial declares alike is read once per row, not once per trial. (A bad value, which
    the text memo never keeps: a good one is read once per run.)"""
    import dataclasses

    import screener.run.batch as batch
    from screener.run.batch import Summary
    from screener.run.portfolio import Tally, screen_portfolio
    from screener.sources.readers import Row

    twin = dataclasses.replace(trial, id="SITE-TWIN", facts=dict(trial.facts))
    reads: list[str] = []
    real = batch.read_value
    monkeypatch.setattr(batch, "read_value", lambda spec, raw: (reads.append(spec.name), real(spec, raw))[1])
    rows = [Row(n, {"candidate_id": f"P{n}", "ecog": "one"}) for n in (1, 2)]
    records = list(screen_portfolio([trial, twin], rows, Tally([trial, twin], Summary())))
    assert len(records) == 4 and reads.count("ecog") == 2
    assert all(r["decision"] == "error" and r["errors"][0].startswith("ecog: ") for r in records)
