"""Screen many random candidates through one process and compare each with the reference.

    python benchmarks/stress.py [--trial ID ...] [--count 200000] [--seed 1]
                                [--profile adversarial|realistic]

For each trial (every rules file in rules/ unless `--trial` names some), the batch path
(`screen_row`) with one long-lived durable-rules Screener, against the plain Python
reference evaluator in tests/reference.py, on random candidates of that trial's rules file
(benchmarks/candidates.py). Prints decision counts, every mismatch (there must be none),
time and peak RSS; exits 1 on any mismatch.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from candidates import ADVERSARIAL, REALISTIC, Generator  # noqa: E402
from reference import reference_for  # noqa: E402

from screener.run.batch import screen_row  # noqa: E402
from screener.engine import Screener  # noqa: E402
from screener.sources.readers import Row  # noqa: E402
from screener.rules.check import load_trial  # noqa: E402

RULES = ROOT / "rules"


def shipped_trials() -> list[str]:
    return sorted(p.stem for p in RULES.glob("*.yaml") if not p.name.endswith(".cases.yaml"))


def compare(record: dict, want: dict, invalid: set[str]) -> str | None:
    """Why the engine's record differs from the reference, or None."""
    if record["decision"] != want["decision"]:
        return f"decision {record['decision']} != reference {want['decision']}"
    if record["decision"] == "error":
        named = {e.split(":", 1)[0] for e in record["errors"]}
        if not invalid <= named:
            return f"errors {record['errors']} do not name {sorted(invalid - named)}"
        if named != {e.split(":", 1)[0] for e in want["errors"]}:
            return f"errors {record['errors']} != reference {want['errors']}"
        return None
    if invalid:
        return f"invalid {sorted(invalid)} but decision {record['decision']}"
    if record["failed_criteria"] != want["failed_criteria"]:
        return f"failed {record['failed_criteria']} != reference {want['failed_criteria']}"
    if record["missing"] != (want["missing"] or []):
        return f"missing {record['missing']} != reference {want['missing']}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trial", action="append", help="trial id (repeatable; default: all)")
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", choices=("adversarial", "realistic"), default="adversarial")
    parser.add_argument("--show", type=int, default=10, help="mismatches to print in full")
    args = parser.parse_args(argv)
    bad = 0
    for trial_id in args.trial or shipped_trials():
        bad += stress(trial_id, args)
    return 1 if bad else 0


def stress(trial_id: str, args: argparse.Namespace) -> int:
    """Mismatches of one trial."""
    profile = ADVERSARIAL if args.profile == "adversarial" else REALISTIC
    rules = RULES / f"{trial_id}.yaml"
    trial = load_trial(rules)
    screener = Screener(trial)
    reference = reference_for(rules)
    generator = Generator(rules)
    decisions: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    mismatches = 0
    engine_s = reference_s = 0.0
    started = time.perf_counter()
    for n, cand in enumerate(generator.candidates(args.seed, args.count, profile), 1):
        t0 = time.perf_counter()
        record = screen_row(trial, screener, Row(n, cand.fields)).record
        t1 = time.perf_counter()
        want = reference.decide(cand.fields)
        t2 = time.perf_counter()
        engine_s += t1 - t0
        reference_s += t2 - t1
        decisions[record["decision"]] += 1
        failed.update(record["failed_criteria"])
        why = compare(record, want, cand.invalid)
        if why is not None:
            mismatches += 1
            if mismatches <= args.show:
                print(f"MISMATCH {trial_id} #{n}: {why}\n  fields: {cand.fields!r}\n"
                      f"  engine: {record}\n  reference: {want}")
        if n % 50_000 == 0:
            print(f"  {trial_id}: {n:,} screened, {mismatches} mismatches, "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"trial           {trial_id}")
    print(f"candidates      {args.count:,} ({args.profile}, seed {args.seed})")
    for decision in ("eligible", "ineligible", "undetermined", "error"):
        print(f"  {decision:<13} {decisions[decision]:>9,}")
    print("failed criteria " + ", ".join(f"{k} {v:,}" for k, v in sorted(failed.items())))
    print(f"mismatches      {mismatches}")
    print(f"time            {wall:.1f} s wall; engine {engine_s:.1f} s "
          f"({args.count / engine_s:,.0f}/s), reference {reference_s:.1f} s "
          f"({args.count / reference_s:,.0f}/s)")
    print(f"peak RSS        {peak_mb:.1f} MB (the process so far)")
    return mismatches


if __name__ == "__main__":
    sys.exit(main())
