"""FHIR input: bundles and candidates per second beside the CSV of the same candidates, and
memory on a large Bulk Data export.

    python benchmarks/fhir_throughput.py [--count 2000] [--trial NCT06898385] [--memory 100000]

1. Draws `--count` realistic candidates of the trial (benchmarks/candidates.py) and writes
   each as a FHIR record with noise plus a sheet of what no record holds
   (tests/fhir_synth.py), under benchmarks/out/fhir/: a folder of Bundles, the same patients
   as a Bulk Data export, the sheet, and the candidates' full fact table as a CSV.
2. Reading only (grouping by patient and applying the mappings, no screening), in this
   process: Bundles per second and export patients per second.
3. End to end, as child processes: `screener batch --trial T bundles/ sheet.csv`, the same
   with the export, and `screener batch --trial T full.csv`: candidates per second (wall and
   CPU), and the decisions of the three runs compared (they must agree).
4. `--memory N` writes an export of N patients (each a Patient and eight other resources,
   from templates) and reads it in a child process, reporting its peak RSS (VmHWM) beside
   the same for N/10 patients: grouping holds one patient at a time, so the two stay close.

Exit status 1 when decisions differ between the inputs.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "fhir"
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from candidates import REALISTIC, as_csv_cell, generator_for  # noqa: E402
from fhir_synth import bundle, ndjson, split  # noqa: E402

from screener.rules.check import load_trial  # noqa: E402
from screener.sources.extract import extract  # noqa: E402
from screener.sources.fhir import FhirSource, PatientRecord  # noqa: E402
from screener.sources.mapping import load_mappings  # noqa: E402

AS_OF = dt.date(2026, 12, 1)


def write_inputs(trial_id: str, count: int, seed: int) -> dict[str, Path]:
    trial = load_trial(ROOT / "rules" / f"{trial_id}.yaml")
    mappings = load_mappings()
    rng = random.Random(seed)
    folder = OUT / trial_id
    bundles, export = folder / "bundles", folder / "export"
    for directory in (bundles, export):
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():
            old.unlink()
    patients, sheets, full = [], [], []
    for i, cand in enumerate(generator_for(ROOT / "rules" / f"{trial_id}.yaml").candidates(seed, count, REALISTIC)):
        if cand.invalid:
            continue
        resources, sheet = split(trial, mappings, cand.fields, AS_OF, rng)
        (bundles / f"{i:07}.json").write_text(bundle(resources), encoding="utf-8")
        patients.append(resources)
        sheets.append(sheet)
        full.append(cand.fields)
    for name, text in ndjson(patients).items():
        (export / name).write_text(text, encoding="utf-8")
    paths = {"bundles": bundles, "export": export}
    for name, rows in (("sheet", sheets), ("full", full)):
        columns = sorted({k for row in rows for k in row}, key=lambda c: (c != trial.id_fact, c))
        path = folder / f"{name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([as_csv_cell(row.get(c)) for c in columns])
        paths[name] = path
    return paths


def read_only(path: Path, trial_ids: list[str]) -> tuple[int, float, float]:
    """(patients, wall seconds, CPU seconds) to group and map every patient of `path`."""
    specs: dict = {}
    for trial_id in trial_ids:
        for name, spec in load_trial(ROOT / "rules" / f"{trial_id}.yaml").facts.items():
            specs.setdefault(name, spec)
    mappings = load_mappings()
    start, cpu = time.perf_counter(), time.process_time()
    patients = 0
    for found in FhirSource(str(path)).patients():
        if isinstance(found, PatientRecord):
            extract(found, mappings, specs, {}, AS_OF)
            patients += 1
    return patients, time.perf_counter() - start, time.process_time() - cpu


def batch(args: list[str], out: Path) -> tuple[float, float, list[dict]]:
    """(wall seconds, CPU seconds, records) of one `screener batch` child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "screener", "batch", *args, "-o", str(out), "--as-of",
                    AS_OF.isoformat()], check=False, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return wall, cpu, records


def _decided(records: list[dict]) -> list[tuple]:
    return [(r["candidate_id"], r["decision"], tuple(r["failed_criteria"]), tuple(r["missing"])) for r in records]


_PATIENT = '{"resourceType":"Patient","id":"P%d","gender":"%s","birthDate":"19%02d-0%d-1%d"}\n'
_OBS = ('{"resourceType":"Observation","id":"O%d-%d","status":"%s","code":{"coding":[{"system":'
        '"http://loinc.org","code":"%s"}]},"subject":{"reference":"Patient/P%d"},"effectiveDateTime":'
        '"2026-11-%02d","valueQuantity":{"value":%s,"unit":"%s","system":"http://unitsofmeasure.org",'
        '"code":"%s"}}\n')
_LABS = (("718-7", "g/L", 130), ("777-3", "10*9/L", 210), ("751-8", "10*9/L", 3.1), ("1742-6", "U/L", 25),
         ("2160-0", "umol/L", 80), ("29463-7", "kg", 70))
_COND = ('{"resourceType":"Condition","id":"C%d","clinicalStatus":{"coding":[{"code":"%s"}]},"code":'
         '{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"C78.7"}]},"subject":'
         '{"reference":"Patient/P%d"},"onsetDateTime":"2025-01-01"}\n')
_MED = ('{"resourceType":"MedicationStatement","id":"M%d","status":"active","medicationCodeableConcept":'
        '{"coding":[{"system":"http://www.whocc.no/atc","code":"C09AA02"}]},"subject":{"reference":'
        '"Patient/P%d"},"effectivePeriod":{"start":"2024-01-01"}}\n')


def write_large_export(count: int) -> Path:
    """An export of `count` patients written from templates: one file per resource type."""
    folder = OUT / f"export-{count}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(count)
    with open(folder / "Patient.ndjson", "w") as f:
        for i in range(count):
            f.write(_PATIENT % (i, rng.choice(("female", "male")), rng.randint(30, 99), rng.randint(1, 9),
                                rng.randint(0, 9)))
    with open(folder / "Observation.ndjson", "w") as f:
        for i in range(count):
            for k, (code, unit, value) in enumerate(_LABS):
                f.write(_OBS % (i, k, rng.choice(("final", "final", "preliminary")), code, i,
                                rng.randint(20, 30), value, unit, unit))
    with open(folder / "Condition.ndjson", "w") as f:
        for i in range(count):
            f.write(_COND % (i, rng.choice(("active", "resolved")), i))
    with open(folder / "MedicationStatement.ndjson", "w") as f:
        for i in range(count):
            f.write(_MED % (i, i))
    return folder


def _measure_child(path: Path, trial: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--read-only", str(path), "--trial", trial],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--trial", default="NCT06898385")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory", type=int, default=0, metavar="N")
    parser.add_argument("--read-only", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.read_only:
        patients, wall, cpu = read_only(Path(args.read_only), [args.trial])
        with open("/proc/self/status") as status:
            peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        print(json.dumps({"patients": patients, "wall": wall, "cpu": cpu, "peak_kb": peak}))
        return 0
    status = 0
    if args.count:
        paths = write_inputs(args.trial, args.count, args.seed)
        count = sum(1 for _ in paths["bundles"].iterdir())
        print(f"{args.trial}: {count} candidates (invalid ones left out), as of {AS_OF}")
        for name in ("bundles", "export"):
            patients, wall, cpu = read_only(paths[name], [args.trial])
            print(f"  read {name:8} {patients:6} patients  {patients / wall:8.0f}/s  ({patients / cpu:.0f} per CPU s)")
        runs = {}
        for name, inputs in (("CSV", [paths["full"]]), ("bundles+sheet", [paths["bundles"], paths["sheet"]]),
                             ("export+sheet", [paths["export"], paths["sheet"]])):
            wall, cpu, records = batch(["--trial", args.trial, *map(str, inputs)], OUT / f"{name}.jsonl")
            runs[name] = records
            print(f"  batch {name:14} {len(records):6} candidates  {len(records) / wall:7.0f}/s wall  "
                  f"{len(records) / cpu:7.0f}/CPU s")
        want = sorted(_decided(runs["CSV"]))
        for name in ("bundles+sheet", "export+sheet"):
            differ = len(set(want) ^ set(sorted(_decided(runs[name]))))
            print(f"  {name}: {'same decisions as the CSV' if not differ else f'{differ} records differ'}")
            status |= bool(differ)
    if args.memory:
        for n in (args.memory // 10, args.memory):
            folder = write_large_export(n)
            size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
            found = _measure_child(folder, args.trial)
            print(f"  export of {n:7} patients ({size:6.0f} MB): read in {found['wall']:6.1f} s "
                  f"({found['patients'] / found['wall']:.0f} patients/s), peak RSS {found['peak_kb'] / 1024:.0f} MB")
    return status


if __name__ == "__main__":
    sys.exit(main())
