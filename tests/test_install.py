"""Installed anywhere: a wheel built from the repository carries the shipped trials.

Built and installed offline: the wheel by the test environment's own setuptools, installed
with `--no-index --no-deps` into a fresh virtual environment that borrows the dependencies
(durable-rules, PyYAML, ...) from the test environment through a .pth line.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT


def _run(args: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    home = cwd.parent / "home"  # caches (the unit system keeps one) go there, not where it ran
    home.mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}  # no SCREENER_* variable
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_wheel_carries_the_shipped_trials_and_screens_from_any_directory(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("screener", "rules", "dialogs", "mappings"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                  "--quiet", "-w", str(tmp_path / "dist"), str(source)], tmp_path)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("screener-*.whl"))

    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "screener").rglob("*")
               if p.suffix in (".py", ".j2", ".mo")}  # code, letter templates, compiled catalogues
    assert shipped - names == set(), "missing from the wheel: list its package or data in pyproject.toml"
    trials = {p.name for p in (ROOT / "rules").glob("*.yaml")} | {p.name for p in (ROOT / "dialogs").glob("*.yaml")}
    packed = {n.rsplit("/", 1)[1] for n in names if n.startswith("screener/shipped/")}
    assert trials <= packed and any(n.endswith(".en.yaml") for n in packed)
    mappings = {p.name for p in (ROOT / "mappings").glob("*.yaml")}
    assert mappings and {f"screener/shipped/mappings/{m}" for m in mappings} <= names

    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    assert made.returncode == 0, made.stderr
    target = next((venv / "lib").glob("python3*/site-packages"))
    (target / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
    installed = _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                      "--no-index", "--no-deps", "--quiet", str(wheel)], tmp_path)
    assert installed.returncode == 0, installed.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = _run([str(venv / "bin" / "screener"), "trials", "--json"], elsewhere)
    assert listed.returncode == 0, listed.stderr
    found = [json.loads(line) for line in listed.stdout.splitlines()]
    shipped = sorted(p.stem for p in (ROOT / "rules").glob("*.yaml") if "." not in p.stem)
    assert sorted(t["trial_id"] for t in found) == shipped
    assert all(t["origin"] == "shipped" and t["rules"].startswith(str(target)) for t in found)

    screened = _run([str(venv / "bin" / "screener"), "batch", str(ROOT / "examples" / "candidates.csv")], elsewhere)
    assert screened.returncode == 1, screened.stderr  # the sample has one error row on purpose
    records = [json.loads(line) for line in screened.stdout.splitlines()]
    with (ROOT / "examples" / "candidates.csv").open(encoding="utf-8") as f:
        rows = sum(1 for _ in f) - 1
    assert len(records) == rows * len(shipped)
    assert records[0]["candidate_id"] == "ZS-001" and records[0]["decision"] == "eligible"
    assert not os.listdir(elsewhere)  # nothing written where it ran

    record = tmp_path / "record.json"  # a patient record, read with the shipped mappings
    record.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "R-1", "gender": "male"}}]}), encoding="utf-8")
    screened = _run([str(venv / "bin" / "screener"), "batch", "--trial", "NCT03862768", str(record)], elsewhere)
    assert screened.returncode == 0, screened.stderr
    (from_record,) = [json.loads(line) for line in screened.stdout.splitlines()]
    assert from_record["sources"]["sex"]["resource"] == "Patient/R-1"
