"""A person never reads the machine's words: every output surface of every shipped trial —
the dialog (questions answered, `how`, `why`, `summary`, review, decision), letters in
Markdown and HTML in English and Chinese, `explain` and `verify` — is rendered and searched
for Python reprs, UCUM codes, the terms and rule ids the compiler makes up, and raw fact names.

The only fact names a person may see are the dialog's command handles in brackets (`[ecog]`,
what `change ecog` takes) and the field names the hint of a list question shows for typing."""
from __future__ import annotations

import functools
import io
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from english_left import plain_html, plain_markdown

from screener.cli import build_parser
from screener.dialog.spec import load_dialog
from screener.present import label_from, list_text, number_text, quantity_text, unit_text
from screener.rules.check import load_trial
from screener.trials import dialog_path, rules_path

SHIPPED = ["NCT03862768", "NCT06898385", "NCT06534411"]

# What a Python object, the rules' units or the compiler's names look like in text.
MACHINE = [r"datetime\.", r"Decimal\(", r"\{'", r"\bNone\b", r"Special\.", r"\(\)", r"\bx_t\d",
           r"\bterm\.t\d", r"\bderive\.", r"\.part\d", r"\bumol/L", r"10\*\d", r"mm\[Hg\]",
           r"\[IU\]", r"\{1\.73"]


@functools.lru_cache(maxsize=None)
def fact_names(trial_id: str) -> list[str]:
    """The trial's fact names that are codes, not words (with an underscore or a digit), and
    the fields of its list facts."""
    trial = load_trial(rules_path(trial_id))
    names = set(trial.facts)
    for spec in trial.facts.values():
        names.update(item.name for item in spec.item)
    return sorted(n for n in names if "_" in n or re.search(r"\d", n))


def leaks(text: str, trial_ids: list[str]) -> list[str]:
    """Every line of `text` that holds a machine word."""
    names = sorted({n for t in trial_ids for n in fact_names(t)}, key=len, reverse=True)
    pattern = re.compile("|".join(MACHINE + [rf"(?<![\w.*/-]){re.escape(n)}(?![\w*])" for n in names]))
    return [line.strip()[:160] for line in text.splitlines() if pattern.search(line)]


def base_case(trial_id: str) -> dict[str, Any]:
    cases = yaml.safe_load(rules_path(trial_id).with_suffix(".cases.yaml").read_text(encoding="utf-8"))
    return dict(cases["base"])


def run(*argv: str, **consoles: Console) -> int:
    """A screener command run in this process (`out`/`err` consoles for verify and explain)."""
    args = build_parser().parse_args(list(argv))
    return int(args.run(args, **consoles))


# --- the presentation layer itself ----------------------------------------------------------

@pytest.mark.parametrize(("ucum", "written"), [
    ("umol/L", "µmol/L"), ("10*9/L", "×10⁹/L"), ("10*12/L", "×10¹²/L"), ("kg/m2", "kg/m²"),
    ("mm[Hg]", "mmHg"), ("[IU]/mL", "IU/mL"), ("mL/min/{1.73_m2}", "mL/min/1.73 m²"),
    ("g/dL", "g/dL"), ("U/L", "U/L"), ("d", "days"), ("years", "years"),
])
def test_units_read_as_clinicians_write_them(ucum: str, written: str) -> None:
    assert unit_text(ucum) == written


@pytest.mark.parametrize(("value", "shown"), [
    (Decimal("91.2063"), "91.2"),      # a computed clearance: one decimal
    (Decimal("436.5571"), "437"),      # a computed QTcF: whole milliseconds
    (Decimal("0.857142"), "0.86"),
    (Decimal("3.200"), "3.2"),         # kept decimals of a given value: as given
    (Decimal("20.52"), "20.52"),       # two decimals are never rounded
    (Decimal("49.96"), "49.96"),       # would read 50.0, the limit it misses
    (Decimal("449.9600"), "449.96"),   # would read 450, the limit it misses
    (Decimal("1.000000"), "1"), (60, "60"), (1.0, "1"),
])
def test_numbers_at_a_clinical_precision_never_round_to_a_limit_they_miss(value: Any, shown: str) -> None:
    assert number_text(value) == shown


def test_quantities_lists_and_labels_read_as_words() -> None:
    assert quantity_text(Decimal("3.200"), "10*9/L") == "3.2 ×10⁹/L"
    assert quantity_text("62.0", "%") == "62%"
    assert quantity_text(Decimal("79.5600"), "umol/L") == "79.56 µmol/L"
    assert quantity_text(61, "years", "zh") == "61 岁"
    regimens = [{"regimen": "gemcitabine_based", "end_date": "2025-02-15", "progression_date": "never"},
                {"regimen": "folfirinox", "end_date": "ongoing", "progression_date": None}]
    assert list_text(regimens) == ("(1) regimen: gemcitabine based, end date: 2025-02-15, progression date: never; "
                                   "(2) regimen: folfirinox, end date: ongoing")
    assert list_text([], "zh") == "无"
    assert label_from("crcl", "Creatinine clearance (Cockcroft-Gault, or measured).") == \
        "Creatinine clearance (Cockcroft-Gault, or measured)"
    assert label_from("last_dvt_date", "Date of the last deep vein thrombosis requiring treatment, "
                                       "or never if there was none at any time.") == "Last dvt date"


# --- every surface of every shipped trial -----------------------------------------------------

def batch_surfaces(tmp_path: Path, trial_id: str, language: str) -> list[tuple[str, str]]:
    """Letters (md, html) of an eligible, an ineligible and an undetermined candidate screened
    in batch in `language`, and `explain` and `verify` of the last two."""
    base = base_case(trial_id)
    eligible = {**base, "candidate_id": "E-1"}
    undetermined = {k: v for k, v in base.items() if k != "screening_date"} | {"candidate_id": "U-1"}
    ineligible = {**base, "candidate_id": "I-1", "ecog": 4} if "ecog" in base else \
        {**base, "candidate_id": "I-1", "birth_date": "1920-01-01"}
    data = tmp_path / f"{trial_id}-{language}.jsonl"
    data.write_text("".join(json.dumps(c, default=str) + "\n" for c in (eligible, undetermined, ineligible)),
                    encoding="utf-8")
    traces, letters = tmp_path / f"t-{trial_id}-{language}", tmp_path / f"l-{trial_id}-{language}"
    assert run("batch", str(data), "--trial", trial_id, "--lang", language, "--traces", str(traces),
               "--letters", str(letters), "-o", str(tmp_path / f"r-{trial_id}-{language}.jsonl")) == 0
    surfaces = []
    for letter in sorted(letters.iterdir()):
        text = letter.read_text(encoding="utf-8")
        surfaces.append((letter.name, plain_html(text) if letter.suffix == ".html" else plain_markdown(text)))
    for trace in sorted(traces.iterdir()):
        if trace.name.startswith("e-"):  # the eligible one reads as the ineligible one does
            continue
        for command in ("explain", "verify"):
            out, err = io.StringIO(), io.StringIO()
            status = run(command, str(trace), "--lang", language,
                         out=Console(file=out, width=120), err=Console(file=err, width=120))
            assert status == 0, out.getvalue() + err.getvalue()
            surfaces.append((f"{command} {trace.name}", out.getvalue() + err.getvalue()))
    assert len(surfaces) == 10
    return surfaces


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("trial_id", SHIPPED)
def test_letters_explain_and_verify_show_no_machine_words(tmp_path: Path, trial_id: str, language: str) -> None:
    found = {name: leaks(text, [trial_id]) for name, text in batch_surfaces(tmp_path, trial_id, language)}
    assert {name: lines for name, lines in found.items() if lines} == {}


def dialog_text(text: str, trial_ids: list[str], language: str) -> str:
    """A transcript without what may name facts: command handles and list hints."""
    hints = set()
    for trial_id in trial_ids:
        try:
            dialog = load_dialog(dialog_path(trial_id, language), load_trial(rules_path(trial_id)))
        except Exception:  # a trial without a dialog file in that language
            continue
        hints |= {q.hint.strip() for q in dialog.questions.values()}
    text = re.sub(r"\[[a-z0-9_]+\]", "", text)
    return "\n".join(line for line in text.splitlines()
                     if line.strip() not in hints and not line.startswith("> "))  # typed, not shown


def answers_file(tmp_path: Path, trial_id: str, leave: list[str]) -> Path:
    known = {k: json.dumps(v, default=str) if isinstance(v, list) else v  # a list as its JSON text
             for k, v in base_case(trial_id).items() if k not in leave and k != "candidate_id"}
    path = tmp_path / f"{trial_id}.answers.yaml"
    path.write_text(yaml.safe_dump(known, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("language", ["en", "zh"])
def test_a_dialog_with_how_why_and_summary_shows_no_machine_words(tmp_path: Path, language: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    trial_id = "NCT06898385"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    known = answers_file(tmp_path, trial_id, ["creatinine", "prior_regimens", "ecog"])
    trace = tmp_path / "d.trace.jsonl"
    args = build_parser().parse_args([
        "screen", "--trial", trial_id, "--lang", language, "--candidate-id", "D-1", "--answers", str(known),
        "--session", str(tmp_path / "s.json"), "--trace", str(trace), "--letter", str(tmp_path / "d.letter.md")])
    lines = ["how", "why", "summary",  # the regimens first (the dialog file's order), then ECOG
             "regimen=folfirinox, setting=advanced, end_date=2025-02-15, progression_date=2025-03-01",
             "1", "how", "0.9 mg/dL", "how", "summary", ""]
    out = io.StringIO()
    status = args.run(args, stdin=io.StringIO("".join(f"{line}\n" for line in lines)), stdout=out)
    text = out.getvalue()
    assert status == 0, text
    assert "91.2" not in text or "mL/min" in text
    assert leaks(dialog_text(text, [trial_id], language), [trial_id]) == []
    out = io.StringIO()
    assert run("verify", str(trace), out=Console(file=out, width=120)) == 0, out.getvalue()
    assert leaks(out.getvalue(), [trial_id]) == []
    letter = plain_markdown((tmp_path / "d.letter.md").read_text(encoding="utf-8"))
    assert leaks(letter, [trial_id]) == []


def test_how_across_every_shipped_trial_names_facts_by_their_labels(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    args = build_parser().parse_args(["screen", "--all-trials", "--candidate-id", "A-1",
                                      "--session", str(tmp_path / "s.json")])
    out = io.StringIO()
    args.run(args, stdin=io.StringIO("female\n12 June 1965\n\nhow\nwhy\nquit\n"), stdout=out)
    text = out.getvalue()
    assert "still needs:" in text and "Date type 2 diabetes" not in text
    assert leaks(dialog_text(text, SHIPPED, "en"), SHIPPED) == []
