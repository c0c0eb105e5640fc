"""A site's portfolio in one process: many trials loaded and screened side by side.

    python benchmarks/portfolio.py [--trials 20] [--candidates 2000] [--limits]

Generates a portfolio of N trials the size of the shipped ones (each shipped rules file
cloned under new ids, PORT-001...; durable-rules sees N distinct rulesets), loads them all in
this process, then screens the same candidates for every trial, one durable-rules session
live at a time, sampling the resident memory as it goes. It prints load time and memory per
trial, candidates x trials per second, and memory at the start and end of screening (flat
means no growth with the number of screenings). Exit status 1 if memory grows by more than
10 MB while screening.

`--limits` also probes durable-rules 2.0.28's own limits, each probe in a child process
(a probe may hang or crash the C core): rules in one ruleset, children of one node, rulesets
in one process and their memory. These are the limits `screener/engine.py` keeps clear of.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from candidates import REALISTIC, generator_for  # noqa: E402

from screener.run.batch import screen_row  # noqa: E402
from screener.engine import Screener  # noqa: E402
from screener.sources.readers import Row  # noqa: E402
from screener.rules.check import load_trial  # noqa: E402
from screener.trials import catalog  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def generate(count: int, folder: Path) -> list[Path]:
    """`count` trials cloned from the shipped ones in turn, under ids PORT-001, PORT-002..."""
    shipped = [t.rules for t in catalog().trials]
    paths = []
    for i in range(count):
        source = shipped[i % len(shipped)]
        text = source.read_text(encoding="utf-8")
        trial_id = f"PORT-{i + 1:03d}"
        original = source.stem
        path = folder / f"{trial_id}.yaml"
        path.write_text(text.replace(f"id: {original}", f"id: {trial_id}", 1), encoding="utf-8")
        paths.append(path)
    return paths


def portfolio(trial_count: int, candidate_count: int) -> int:
    with tempfile.TemporaryDirectory() as folder:
        paths = generate(trial_count, Path(folder))
        start_mb = rss_mb()
        started = time.perf_counter()
        trials, screeners, rules = [], [], 0
        for path in paths:
            trial = load_trial(path)
            screener = Screener(trial)
            trials.append(trial)
            screeners.append(screener)
            rules += len(screener.definition)
        load_s = time.perf_counter() - started
        loaded_mb = rss_mb()
        print(f"loaded {trial_count} trials ({rules:,} durable-rules rules in {trial_count} rulesets) "
              f"in {load_s:.1f} s; memory {start_mb:.0f} -> {loaded_mb:.0f} MB "
              f"({(loaded_mb - start_mb) / trial_count:.2f} MB per trial)")

        # candidates with the facts of every kind of shipped trial in the portfolio
        generators = {str(p): generator_for(p) for p in dict.fromkeys(t.rules for t in catalog().trials)}
        rows = _candidates(generators, candidate_count)

        samples = []
        decisions: dict[str, int] = {}
        started = time.perf_counter()
        for n, fields in enumerate(rows):
            row = Row(n + 1, fields)
            for trial, screener in zip(trials, screeners):
                record = screen_row(trial, screener, row).record
                decisions[record["decision"]] = decisions.get(record["decision"], 0) + 1
            if n % max(1, candidate_count // 10) == 0 or n == candidate_count - 1:
                samples.append((n + 1, rss_mb()))
        seconds = time.perf_counter() - started
        screenings = candidate_count * trial_count
        print(f"screened {candidate_count:,} candidates x {trial_count} trials = {screenings:,} screenings "
              f"in {seconds:.1f} s: {screenings / seconds:,.0f} candidates x trials per second, one process")
        print("decisions: " + ", ".join(f"{k} {v:,}" for k, v in sorted(decisions.items())))
        print("memory while screening (candidates done: MB): "
              + ", ".join(f"{n:,}: {mb:.1f}" for n, mb in samples))
        growth = samples[-1][1] - samples[0][1]
        print(f"growth from first to last sample: {growth:+.1f} MB")
        return 1 if growth > 10 else 0


def _candidates(generators: dict, count: int) -> list[dict]:
    """Realistic candidates carrying the facts of every shipped trial (shared facts once)."""
    streams = [g.candidates(seed=7, count=count, profile=REALISTIC) for g in generators.values()]
    rows = []
    for n, parts in enumerate(zip(*streams)):
        fields: dict = {"candidate_id": f"c{n}"}
        for cand in parts:
            for name, value in cand.fields.items():
                if name != "candidate_id":
                    fields.setdefault(name, value)
        rows.append(fields)
    return rows


# --- durable-rules' own limits, probed in child processes ----------------------------------

_PROBE = r'''
import json, sys, time
import durable_rules_engine as dre
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) / 1024
kind, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def rules(count, width, prefix):
    d = {"open": {"all": [{"m": {"t": "open"}}], "pri": 0}}
    for i in range(count):
        d[f"{prefix}{i}"] = {"all": [{"m": {"$and": [{"t": "facts"}, {f"f_a{i % width}": 1}, {"f_b": i // width}]}}]}
    return d
before = rss(); t = time.perf_counter()
try:
    if kind == "rules":      # n rules, k children under each node
        dre.create_ruleset("probe", json.dumps(rules(n, k, "r")))
    else:                    # n rulesets of k rules each
        for j in range(n):
            dre.create_ruleset(f"rs{j}", json.dumps(rules(k, 50, "r")))
    print(json.dumps({"ok": True, "s": time.perf_counter() - t, "mb": rss() - before}))
except dre.error as e:
    print(json.dumps({"ok": False, "error": str(e)}))
'''


def _probe(kind: str, n: int, k: int, timeout: float = 20) -> str:
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, kind, str(n), str(k)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"no answer after {timeout:.0f} s (create_ruleset spins)"
    if done.returncode != 0:
        return f"process died ({done.returncode})"
    result = json.loads(done.stdout)
    if not result["ok"]:
        return result["error"]
    return f"ok, {result['s']:.2f} s, {result['mb']:.1f} MB"


def limits() -> None:
    print("\ndurable-rules limits on this machine (each probe in its own process):")
    for count, width in ((500, 1), (512, 1), (513, 1), (2000, 100), (4000, 100), (4200, 100), (4500, 100)):
        shape = f"{count} rules, all on one node" if width == 1 else f"{count} rules, {width} children a node"
        print(f"  one ruleset, {shape}: {_probe('rules', count, width if width > 1 else count)}")
    for count in (20, 100, 500):
        print(f"  {count} rulesets of 100 rules in one process: {_probe('rulesets', count, 100, 120)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=2000)
    parser.add_argument("--limits", action="store_true", help="also probe durable-rules' limits")
    args = parser.parse_args()
    status = portfolio(args.trials, args.candidates)
    if args.limits:
        limits()
    return status


if __name__ == "__main__":
    sys.exit(main())
