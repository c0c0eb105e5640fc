"""UCUM units as the rules and the values read them: conversions a lab value needs, and the
ones that would silently give wrong numbers refused."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from screener.rules.units import UnitError, conversion, dimension, factor, parse_unit


@pytest.mark.parametrize("given, declared, expected", [
    ("g/dL", "g/L", "10"),
    ("mg/dL", "g/L", "0.01"),
    ("/mm3", "10*9/L", "0.001"),
    ("10*3/uL", "10*9/L", "1"),
    ("[lb_av]", "kg", "0.45359237"),
    ("mm[Hg]", "kPa", "0.133322387415"),
    ("umol/L", "mmol/L", "0.001"),
    ("wk", "d", "7"),
    ("a", "d", "365.25"),   # UCUM's mean Julian year; calendar years are durations, not units
    ("mo", "d", "30.4375"),
    ("ms", "s", "0.001"),
    ("[in_i]", "cm", "2.54"),
    ("mL/min/{1.73_m2}", "mL/min/{1.73_m2}", "1"),
])
def test_a_lab_value_in_another_unit_of_the_same_dimension_converts_exactly(given, declared, expected):
    assert factor(given, declared) == Decimal(expected)


def test_a_creatinine_in_mg_per_dl_converts_only_with_the_analyte_factor_the_rules_declare():
    with pytest.raises(UnitError, match="does not convert"):
        factor("mg/dL", "umol/L")
    assert factor("mg/dL", "umol/L", {"mg/dL": Decimal("88.4")}) == Decimal("88.4")
    # a unit of the declared unit's dimension goes through it
    assert factor("mg/L", "umol/L", {"mg/dL": Decimal("88.4")}) == Decimal("8.84")


def test_hba1c_percent_and_mmol_per_mol_never_convert_as_plain_ratios():
    # pint would say 1 % = 10 mmol/mol; for HbA1c that gives 53 mmol/mol = 5.3 % instead of 7.0 %
    with pytest.raises(UnitError):
        factor("mmol/mol", "%")
    assert dimension("%") != dimension("mmol/mol")
    ngsp = conversion("mmol/mol", "%", {"mmol/mol": Decimal("0.09148")},
                      {"mmol/mol": Decimal("2.152")})
    assert round(ngsp.apply(Decimal(53)), 1) == Decimal("7.0")
    with pytest.raises(UnitError, match="offset"):
        factor("Cel", "[degF]")


def test_an_egfr_per_body_surface_is_not_a_clearance():
    with pytest.raises(UnitError):
        factor("mL/min/{1.73_m2}", "mL/min")
    assert dimension("mL/min/{1.73_m2}") != dimension("mL/min")


def test_dimensions_name_what_can_be_compared():
    assert dimension("g/dL") == dimension("g/L") == "[mass] / [length] ** 3"
    assert dimension("10*9/L") == dimension("/mm3")
    assert dimension("umol/L") != dimension("mg/dL")
    assert dimension("d") == dimension("wk") == dimension("mo") == dimension("a")
    assert dimension("kg/m2") == "[mass] / [length] ** 2"


@pytest.mark.parametrize("code", ["foo", "", " mg", "mg/dL/", "m" * 70, "10*9999/L", "mg//dL"])
def test_text_that_is_not_a_ucum_code_is_a_unit_error_not_a_crash(code):
    with pytest.raises(UnitError, match="not a UCUM unit code"):
        parse_unit(code)


def test_a_trial_without_quantities_never_loads_the_unit_system():
    code = ("import sys\n"
            "from screener.rules.check import load_trial\n"
            "from screener.engine import Screener\n"
            "Screener(load_trial('tests/data/toy/rules/TOY-1.yaml'))\n"
            "print('pint' in sys.modules)\n")
    from conftest import ROOT
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_the_unit_system_loads_neither_numpy_nor_dask_which_stay_importable():
    """Every process that reads a quantity loads the unit system: numpy and dask (the cluster
    extra) would add a tenth of a second each to its start and are never used by it."""
    code = ("import importlib, importlib.util, sys\n"
            "installed = [m for m in ('numpy', 'dask') if importlib.util.find_spec(m)]\n"
            "from screener.rules.units import conversion\n"
            "conversion('mg/L', 'mg/dL')\n"
            "print([m for m in ('numpy', 'dask') if m in sys.modules])\n"
            "for m in installed:\n    importlib.import_module(m)\n")
    from conftest import ROOT
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr


def test_a_rules_file_declares_quantities_conversions_never_dates_lists_and_context_facts():
    from conftest import ROOT
    from screener.rules.check import load_trial

    trial = load_trial(ROOT / "tests" / "data" / "kinds" / "KINDS-1.yaml")
    facts = trial.facts
    assert facts["creatinine"].convert == (("mg/dL", Decimal("88.4")),)
    assert facts["hba1c"].affine == (("mmol/mol", Decimal("0.09148"), Decimal("2.152")),)
    assert facts["hba1c"].convert == ()  # an affine conversion is never used as a plain factor
    assert facts["platelets"].places == 0 and facts["bp"].item[1].places == 0
    assert [f.name for f in facts["bp"].item] == ["date", "systolic", "arm"]
    assert [s.value for s in facts["drug_stop"].special] == ["never", "ongoing"]
    assert facts["cohort"].context and not facts["consent"].context


# --- a power beyond any laboratory unit is refused before it is computed ------------------
# `10*99999999999/L` once kept batch busy for minutes (10**99999999999 computed, then its
# dimension checked) and hung `check` on a rules file declaring it.

@pytest.mark.parametrize("code", ["10*99999999999/L", "10*-99999999999/L", "10^9999999", "m99999999",
                                  "10*100/L", "mg.10*9.m-100"])
def test_a_unit_raised_to_a_huge_power_pinned_the_cpu(code):
    with pytest.raises(UnitError, match="not a UCUM unit code the screener accepts: a power beyond 99"):
        parse_unit(code)


def test_powers_up_to_99_still_convert():
    assert factor("10*12/L", "10*9/L") == Decimal(1000)
    assert factor("10*-15.L", "fL") == Decimal(1)
    assert dimension("m99") == "[length] ** 99"


HUGE_UNIT = "10*99999999999/L"


def _screener(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # a subprocess, so that a regression ends in a timeout instead of a test run that never ends
    return subprocess.run([sys.executable, "-m", "screener", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


def test_a_huge_power_in_a_candidate_cell_is_that_candidates_error(tmp_path):
    (tmp_path / "in.csv").write_text(f"candidate_id,anc\nC1,150 {HUGE_UNIT}\nC2,1.5 10*9/L\n",
                                     encoding="utf-8")
    (tmp_path / "in.jsonl").write_text(
        f'{{"candidate_id": "C1", "anc": {{"value": 150, "unit": "{HUGE_UNIT}"}}}}\n', encoding="utf-8")
    for name in ("in.csv", "in.jsonl"):
        done = _screener("batch", "--trial", "NCT06898385", name, "-o", "out.jsonl", cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        first = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()[0])
        assert first["candidate_id"] == "C1" and first["decision"] == "error"
        [error] = first["errors"]
        assert error.startswith("anc: ") and error.endswith(f": the unit {HUGE_UNIT} does not convert to 10*9/L")


def test_a_huge_power_in_a_site_rules_file_is_a_check_error_at_its_line(tmp_path):
    from conftest import ROOT

    site = tmp_path / "site"
    site.mkdir()
    kinds = (ROOT / "tests" / "data" / "kinds" / "KINDS-1.yaml").read_text(encoding="utf-8")
    assert "unit: 10*9/L," in kinds
    (site / "KINDS-1.yaml").write_text(kinds.replace("unit: 10*9/L,", f"unit: {HUGE_UNIT},"), encoding="utf-8")
    done = _screener("check", "--rules-dir", str(site), cwd=tmp_path)
    assert done.returncode == 2
    line = next(n for n, text in enumerate(kinds.splitlines(), 1) if "unit: 10*9/L," in text)
    assert f"{site / 'KINDS-1.yaml'}:{line}:37: unit: fact platelets: '{HUGE_UNIT}' is not a UCUM unit code " \
           "the screener accepts: a power beyond 99" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_factor_beyond_28_digits_crashed_the_conversion():
    # found by fuzzing: 10*81/L is 10**72 10*9/L, an integer longer than Decimal's precision
    assert factor("10*81/L", "10*9/L") == Decimal(10) ** 72
    assert factor("10*-99/L", "10*9/L") == Decimal("1E-108")


def test_a_value_in_a_unit_that_large_is_that_candidates_error(tmp_path):
    (tmp_path / "in.csv").write_text("candidate_id,anc\nC1,150 10*81/L\nC2,1.5 10*9/L\n", encoding="utf-8")
    done = _screener("batch", "--trial", "NCT06898385", "in.csv", "-o", "out.jsonl", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    first, second = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    (error,) = first["errors"]
    assert first["decision"] == "error" and error.startswith("anc: '150 10*81/L': ")
    assert "too large" in error or "above the maximum" in error
    assert second["decision"] == "undetermined"


def test_the_unit_system_writes_nothing_unless_the_user_names_a_cache_folder(tmp_path: Path):
    """Nothing is written outside the folders a user named: pint keeps its definitions cache
    in ~/.cache unless told otherwise; the screener keeps one only in $SCREENER_CACHE_DIR, and
    so it does with its checked and compiled trials and the unit system's answers."""
    import os
    import stat

    home, cache, work = tmp_path / "home", tmp_path / "cache", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    rules = Path(__file__).resolve().parent.parent / "rules" / "NCT03862768.yaml"
    convert = ("from screener.rules.check import load_trial; from screener.engine import Screener; "
               f"Screener(load_trial({str(rules)!r})); "
               "from screener.rules.units import factor; import sys; "
               "print(factor('mg/dL', 'g/L'), 'pint' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in ("SCREENER_CACHE_DIR", "XDG_CACHE_HOME")}
    env["HOME"] = str(home)
    done = subprocess.run([sys.executable, "-c", convert], env=env, capture_output=True, text=True, timeout=120,
                          cwd=work)
    assert done.returncode == 0, done.stderr
    assert list(home.rglob("*")) == [] and list(work.rglob("*")) == []
    done = subprocess.run([sys.executable, "-c", convert], env={**env, "SCREENER_CACHE_DIR": str(cache)},
                          capture_output=True, text=True, timeout=120, cwd=work)
    assert done.returncode == 0, done.stderr
    assert list(home.rglob("*")) == [] and list(work.rglob("*")) == [] and any((cache / "pint").iterdir())
    kept = cache / "compiled"
    names = sorted(p.name.split("-")[0] for p in kept.iterdir())
    assert names == ["rulesets", "trial", "units"]  # none readable by others
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in kept.iterdir())
    assert done.stdout.split() == ["0.01", "True"]
    # the next process reads the trial, its rulesets and the conversion from the cache
    done = subprocess.run([sys.executable, "-c", convert], env={**env, "SCREENER_CACHE_DIR": str(cache)},
                          capture_output=True, text=True, timeout=120, cwd=work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0.01", "False"]  # without building the unit system
