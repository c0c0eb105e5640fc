"""How long `screener report` takes on a large results file, and what the chart costs.

Writes a results file of N candidates x every shipped trial (random decisions, failed
criteria and missing facts drawn from each trial's own criteria and facts), then times the
CSV report, the HTML report (with its matplotlib chart) and the import of matplotlib alone.

    .venv/bin/python benchmarks/report.py --candidates 100000
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from screener.rules.check import load_trial  # noqa: E402
from screener.screening_log import category  # noqa: E402
from screener.trials import catalog  # noqa: E402


def results(path: Path, candidates: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    trials = [load_trial(t.rules) for t in catalog().trials]
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for n in range(candidates):
            for trial in trials:
                decision = rng.choice(["eligible", "ineligible", "ineligible", "undetermined", "error"])
                failed = sorted(rng.sample([c.id for c in trial.criteria], rng.randint(1, 3))) \
                    if decision == "ineligible" else []
                missing = rng.sample(list(trial.facts)[1:], rng.randint(1, 6)) if decision == "undetermined" else []
                record = {"candidate_id": f"C-{n:06d}", "trial_id": trial.id, "decision": decision,
                          "failed_criteria": failed, "missing": missing,
                          "errors": ["x: bad"] if decision == "error" else [],
                          "screening_log": category(trial, decision, failed)}
                out.write(json.dumps(record) + "\n")
                written += 1
    return written


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=20000)
    args = parser.parse_args()
    screener = [sys.executable, "-m", "screener"]
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "results.jsonl"
        records = results(source, args.candidates)
        print(f"{records:,} records ({args.candidates:,} candidates x every shipped trial)")
        start_up = timed([sys.executable, "-c", "import screener.cli"])
        print(f"python + screener import: {start_up:.2f} s")
        chart = timed([sys.executable, "-c", "from matplotlib.figure import Figure; "
                                             "from matplotlib.backends.backend_svg import FigureCanvasSVG"])
        print(f"python + matplotlib (Figure, SVG backend) import: {chart:.2f} s")
        for suffix in ("csv", "html"):
            seconds = timed([*screener, "report", str(source), "-o", str(Path(folder) / f"r.{suffix}")])
            print(f"report -> .{suffix}: {seconds:.2f} s ({records / seconds:,.0f} records/s)")


if __name__ == "__main__":
    main()
