"""End-to-end batch throughput and memory, against the plain-Python reference as the floor.

    python benchmarks/batch_throughput.py [--count 100000] [--jobs 1,2] [--memory] [--all-trials]
                                          [--trial ID] [--cluster local:2] [--cluster tcp://HOST:PORT]

Writes a CSV of realistic random candidates (benchmarks/candidates.py) under benchmarks/out/,
runs `python -m screener batch FILE.csv -o OUT.jsonl --jobs J` as a child process for each J,
and reports candidates per second and peak memory, sampled from /proc every 0.2 s: the largest
peak RSS (VmHWM) of any one process, and RSS and PSS summed over the process tree. (wait4's
ru_maxrss is not used: Linux carries the forking parent's peak into it across exec.) The same candidates then go through the
reference evaluator of tests/reference.py in this process (same CSV reader, no engine), which
is the floor the engine is compared with; its results are also checked against the batch
output. For NCT03862768 the same file also goes through benchmarks/floor_nct03862768.py,
straight-line Python written for that trial alone: the run reports batch/floor per CPU second
and checks the batch output against it too. `--memory` adds a 1,000,000-candidate run per job
count whose peak must stay under 150 MB; the exit status is 1 if it does not, or if any result
differs from the reference or the floor.

`--all-trials` screens every shipped trial at once instead (`screener batch --all-trials`):
the candidates carry the facts of every shipped trial (a fact two trials share drawn once),
the rate is candidates x trials per second, and each trial's records are checked against
that trial's reference.

`--trial ID` measures another shipped trial instead of NCT03862768 (its own candidates, its
own reference). `--cluster ADDRESS` (repeatable) adds a run with `--cluster ADDRESS` after
the `--jobs` runs: `local:N` starts its workers as children of the screener, so they are in
its memory and CPU figures; the workers of a `tcp://` scheduler are not (only the client is).
Every run also reports CPU time (user + system, of the screener process and
its workers; of this process for the reference) and candidates per CPU second: on a machine
shared with other work, wall time varies from run to run where CPU time varies much less.
A batch run's CPU time includes its start-up: with SCREENER_CACHE_DIR set in the environment
(the batch runs inherit it) that is reading the compile cache, else compiling the rules and
building the unit system, about a second. The report says which.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
RULES = ROOT / "rules" / "NCT03862768.yaml"
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from candidates import REALISTIC, as_csv_cell, generator_for  # noqa: E402
from reference import reference_for  # noqa: E402

from screener.sources.readers import read_rows  # noqa: E402

MEMORY_COUNT = 1_000_000
MEMORY_LIMIT_MB = 150.0


@dataclass
class Run:
    label: str
    count: int
    seconds: float
    peak_process_mb: float | None = None
    peak_tree_rss_mb: float | None = None
    peak_tree_pss_mb: float | None = None
    status: int = 0
    cpu_seconds: float | None = None  # user + system
    own_cpu_seconds: float | None = None  # of the screener process alone (last sampled): a cluster's client

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def cpu_rate(self) -> float | None:
        return self.count / self.cpu_seconds if self.cpu_seconds else None


def write_csv(count: int, seed: int, rules: Path = RULES) -> Path:
    """The candidates file of the trial in `rules` for (count, seed), generated once and kept
    under benchmarks/out (NCT03862768's keeps the name it always had)."""
    OUT.mkdir(parents=True, exist_ok=True)
    trial = "" if rules == RULES else f"{rules.stem}-"
    path = OUT / f"candidates-{trial}{count}-s{seed}.csv"
    if path.exists():
        return path
    started = time.perf_counter()
    generator = generator_for(rules)
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        header = ["candidate_id", *generator.columns]
        writer.writerow(header)
        for cand in generator.candidates(seed, count, REALISTIC):
            writer.writerow([as_csv_cell(cand.fields.get(name)) for name in header])
    partial.rename(path)
    print(f"wrote {path.relative_to(ROOT)} ({count:,} candidates, "
          f"{time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return path


def _tree_kb(root: int) -> tuple[int, int, int]:
    """Summed RSS and PSS of `root` and its descendants, and the largest peak RSS (VmHWM)
    of any one of them, in kB (Linux /proc).

    RSS counts pages shared between the processes (the interpreter, durable-rules) once per
    process; PSS splits them, so its sum is what the tree really occupies.
    """
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    rss = pss = hwm = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
                        break
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as rollup:
                for line in rollup:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss, hwm


def shipped_rules() -> list[Path]:
    """The rules files of the shipped trials, in the order batch screens them."""
    from screener.trials import catalog

    return [t.rules for t in catalog().trials if t.origin == "shipped"]


def write_portfolio_csv(count: int, seed: int) -> Path:
    """Candidates with the facts of every shipped trial, generated once under benchmarks/out."""
    from candidates import generator_for

    rules = shipped_rules()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"portfolio-{len(rules)}-{count}-s{seed}.csv"
    if path.exists():
        return path
    generators = [generator_for(r) for r in rules]
    header = list(dict.fromkeys(["candidate_id", *(c for g in generators for c in g.columns)]))
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(header)
        streams = [g.candidates(seed, count, REALISTIC) for g in generators]
        for parts in zip(*streams):
            fields: dict = {}
            for cand in parts:
                for name, value in cand.fields.items():
                    fields.setdefault(name, value)
            writer.writerow([as_csv_cell(fields.get(name)) for name in header])
    partial.rename(path)
    return path


def run_batch(csv_path: Path, count: int, jobs: int, python: str, trials: int = 0,
              rules: Path = RULES, cluster: str | None = None) -> tuple[Run, Path]:
    """`screener batch` on `csv_path`: the trial of `rules` alone, or with `trials` every
    shipped trial; in `jobs` processes, or on the Dask cluster at `cluster`."""
    name = f"c-{''.join(c if c.isalnum() else '-' for c in cluster)}" if cluster else f"j{jobs}"
    out = OUT / f"{csv_path.stem}-{name}.jsonl"
    err = OUT / f"{csv_path.stem}-{name}.stderr"
    chosen = ["--all-trials"] if trials else ["--trial", rules.stem]
    spread = ["--cluster", cluster] if cluster else ["--jobs", str(jobs)]
    cmd = [python, "-m", "screener", "batch", str(csv_path), "-o", str(out), *spread, *chosen]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    peak_rss = peak_pss = peak_hwm = 0
    own_ticks = 0
    started = time.perf_counter()
    with err.open("w") as err_stream:
        child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err_stream)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak_rss, peak_pss, peak_hwm, own_ticks
            while not done.wait(0.2):
                rss, pss, hwm = _tree_kb(child.pid)
                peak_rss, peak_pss, peak_hwm = max(peak_rss, rss), max(peak_pss, pss), max(peak_hwm, hwm)
                own_ticks = max(own_ticks, _own_ticks(child.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    if child.returncode not in (0, 1):  # 1: some candidates are errors, as expected
        sys.exit(f"{' '.join(cmd)} exited {child.returncode}; see {err}")
    how = f"--cluster {cluster}" if cluster else f"--jobs {jobs}"
    label = f"screener batch --all-trials ({trials} trials) {how}" if trials else f"screener batch {how}"
    run = Run(label, count * max(trials, 1), seconds,
              peak_hwm / 1024, peak_rss / 1024 if peak_rss else None,
              peak_pss / 1024 if peak_pss else None, child.returncode,
              usage.ru_utime + usage.ru_stime, own_ticks / os.sysconf("SC_CLK_TCK") or None)
    return run, out


def cache_note() -> str:
    """Whether the batch runs started from a compile cache (SCREENER_CACHE_DIR, passed on to
    them from this process's environment): their CPU time includes start-up, which without
    one is compiling the rules and building the unit system."""
    folder = os.environ.get("SCREENER_CACHE_DIR")
    if folder:
        return f"the batch runs used the compile cache in {folder} (SCREENER_CACHE_DIR)"
    return "no compile cache (SCREENER_CACHE_DIR unset): each batch run compiled its rules and built the unit system"


def _own_ticks(pid: int) -> int:
    """User + system clock ticks of the process `pid` itself, not of its children (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def run_reference(csv_path: Path, count: int, rules: Path = RULES) -> tuple[Run, list[dict]]:
    reference = reference_for(rules)
    results: list[dict] = []
    started, cpu = time.perf_counter(), time.process_time()
    with csv_path.open(encoding="utf-8", newline="") as stream:
        for row in read_rows(stream, "csv"):
            results.append(reference.decide(row.fields))
    return Run("reference (plain Python, 1 process)", count, time.perf_counter() - started,
               cpu_seconds=time.process_time() - cpu), results


def portfolio_mismatches(out: Path, csv_path: Path, rules: list[Path]) -> int:
    """Records of an --all-trials run that differ from each trial's reference."""
    import itertools

    references = [reference_for(r) for r in rules]
    bad = 0
    with csv_path.open(encoding="utf-8", newline="") as stream, out.open(encoding="utf-8") as results:
        for row in read_rows(stream, "csv"):
            for reference, line in zip(references, itertools.islice(results, len(references))):
                record, want = json.loads(line), reference.decide(row.fields)
                same = record["decision"] == want["decision"] and (
                    want["decision"] == "error" or (record["failed_criteria"] == want["failed_criteria"]
                                                    and record["missing"] == (want["missing"] or [])))
                if not same:
                    bad += 1
                    if bad <= 5:
                        print(f"MISMATCH row {row.number}: engine {record} reference {want}", file=sys.stderr)
    return bad


def all_trials(args: argparse.Namespace, job_counts: list[int]) -> int:
    rules = shipped_rules()
    csv_path = write_portfolio_csv(args.count, args.seed)
    runs = [run_batch(csv_path, args.count, jobs, args.python, trials=len(rules)) for jobs in job_counts]
    runs += [run_batch(csv_path, args.count, 1, args.python, trials=len(rules), cluster=address)
             for address in args.cluster]
    print(f"\nmachine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {args.count:,} realistic "
          f"candidates (seed {args.seed}) x {len(rules)} shipped trials ({', '.join(r.stem for r in rules)})")
    print(f"start-up: {cache_note()}")
    print("| run | candidates x trials | seconds | candidates x trials/s | CPU seconds "
          "| candidates x trials/CPU s | peak RSS largest process MB | peak PSS sum all processes MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for run, _ in runs:
        print(f"| {run.label} | {run.count:,} | {run.seconds:,.1f} | {run.rate:,.0f} | "
              f"{run.cpu_seconds or 0:,.1f} | {run.cpu_rate or 0:,.0f} | "
              f"{_mb(run.peak_process_mb)} | {_mb(run.peak_tree_pss_mb)} |")
    bad = sum(portfolio_mismatches(out, csv_path, rules) for _, out in runs)
    print(f"records differing from their trial's reference: {bad}")
    return 1 if bad else 0


def mismatches(out: Path, results: list[dict]) -> int:
    bad = 0
    with out.open(encoding="utf-8") as stream:
        for i, line in enumerate(stream):
            record = json.loads(line)
            want = results[i]
            same = record["decision"] == want["decision"] and (
                want["decision"] == "error"
                or (record["failed_criteria"] == want["failed_criteria"]
                    and record["missing"] == (want["missing"] or [])))
            if not same:
                bad += 1
                if bad <= 5:
                    print(f"MISMATCH row {i + 1}: engine {record} reference {want}", file=sys.stderr)
        if i + 1 != len(results):
            print(f"MISMATCH: {i + 1} records for {len(results)} candidates", file=sys.stderr)
            bad += abs(len(results) - i - 1)
    return bad


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _cpu_ratio(run: Run, floor: Run) -> str:
    return "-" if run.cpu_rate is None or floor.cpu_rate is None else f"{run.cpu_rate / floor.cpu_rate:.2f}"


def table(runs: list[Run], floor: Run) -> str:
    lines = [
        "| run | candidates | seconds | candidates/s | vs floor | CPU seconds | candidates/CPU s "
        "| vs floor (CPU) | peak RSS largest process MB | peak RSS sum all processes MB "
        "| peak PSS sum all processes MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in [*runs, floor]:
        cpu = "-" if run.cpu_seconds is None else f"{run.cpu_seconds:,.1f}"
        cpu_rate = "-" if run.cpu_rate is None else f"{run.cpu_rate:,.0f}"
        lines.append(
            f"| {run.label} | {run.count:,} | {run.seconds:,.1f} | {run.rate:,.0f} | "
            f"{run.rate / floor.rate:.2f} | {cpu} | {cpu_rate} | {_cpu_ratio(run, floor)} | "
            f"{_mb(run.peak_process_mb)} | {_mb(run.peak_tree_rss_mb)} | {_mb(run.peak_tree_pss_mb)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="candidates (default 100,000)")
    parser.add_argument("--jobs", default="1,2", help="comma-separated job counts (default 1,2)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--memory", action="store_true",
                        help=f"also screen {MEMORY_COUNT:,} candidates; peak must stay under "
                             f"{MEMORY_LIMIT_MB:.0f} MB")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the batch runs")
    parser.add_argument("--all-trials", action="store_true",
                        help="screen every shipped trial at once; report candidates x trials per second")
    parser.add_argument("--trial", metavar="ID", default=RULES.stem,
                        help=f"the shipped trial to measure (default {RULES.stem})")
    parser.add_argument("--cluster", metavar="ADDRESS", action="append", default=[],
                        help="also run with --cluster ADDRESS (local:N or tcp://HOST:PORT); repeatable")
    args = parser.parse_args(argv)
    job_counts = [int(j) for j in args.jobs.split(",")]
    if args.all_trials:
        return all_trials(args, job_counts)

    rules = RULES.with_name(f"{args.trial}.yaml")
    if not rules.is_file():
        parser.error(f"no shipped trial {args.trial!r} (no {rules.relative_to(ROOT)})")
    csv_path = write_csv(args.count, args.seed, rules)
    runs: list[Run] = []
    outputs: list[Path] = []
    for jobs, cluster in [*((j, None) for j in job_counts), *((1, a) for a in args.cluster)]:
        run, out = run_batch(csv_path, args.count, jobs, args.python, rules=rules, cluster=cluster)
        runs.append(run)
        outputs.append(out)
        print(f"  {run.label}: {run.rate:,.0f} candidates/s, {run.cpu_rate or 0:,.0f} per CPU second",
              file=sys.stderr)
    floor, results = run_reference(csv_path, args.count, rules)
    bad = sum(mismatches(out, results) for out in outputs)
    decisions: dict[str, int] = {}
    for result in results:
        decisions[result["decision"]] = decisions.get(result["decision"], 0) + 1

    print(f"\nmachine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {rules.stem}: "
          f"{args.count:,} realistic candidates (seed {args.seed}): "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(decisions.items())))
    print(f"start-up: {cache_note()}")
    print(table(runs, floor))
    print("engine/floor: " + ", ".join(f"{r.label.removeprefix('screener batch ')}: {r.rate / floor.rate:.2f} "
                                        f"(CPU time: {_cpu_ratio(r, floor)})" for r in runs))
    print(f"results differing from the reference: {bad}")
    if rules == RULES:  # the hand-written floor of this trial (benchmarks/floor_nct03862768.py)
        from floor_nct03862768 import differences, floor_results

        floor_list, floor_cpu = floor_results(csv_path)
        floor_rate = args.count / floor_cpu
        print(f"floor (straight-line Python, 1 process): {floor_rate:,.0f} candidates/CPU s; batch/floor per "
              "CPU second: " + ", ".join(f"--jobs {j}: {r.cpu_rate / floor_rate:.2f} (floor {floor_rate / r.cpu_rate:.2f}x "
                                         "faster)" for j, r in zip(job_counts, runs) if r.cpu_rate))
        floor_bad = sum(differences(floor_list, out) for out in outputs)
        print(f"results differing from the floor: {floor_bad}")
        bad += floor_bad

    failed = bad > 0
    if args.memory:
        big = write_csv(MEMORY_COUNT, args.seed, rules)
        memory_runs = []
        for jobs in job_counts:
            run, out = run_batch(big, MEMORY_COUNT, jobs, args.python, rules=rules)
            memory_runs.append(run)
            out.unlink()  # about 100 MB of results nobody reads
        print(f"\nmemory: {MEMORY_COUNT:,} candidates, limit {MEMORY_LIMIT_MB:.0f} MB")
        print(table(memory_runs, floor).rsplit("\n", 1)[0])
        for run in memory_runs:
            # one process: its peak RSS; several: what the tree occupies together (PSS)
            peak = run.peak_process_mb or 0.0
            if run.label.endswith("--jobs 1"):
                what = "peak RSS"
            else:
                peak, what = max(peak, run.peak_tree_pss_mb or 0.0), "peak PSS of all processes"
            verdict = "ok" if peak < MEMORY_LIMIT_MB else "OVER THE LIMIT"
            print(f"{run.label}: {what} {peak:.1f} MB: {verdict}")
            failed = failed or peak >= MEMORY_LIMIT_MB
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
