"""Start-up of the command line: CPU seconds of whole processes, against a bare Python.

    python benchmarks/startup.py [--runs 5]

Times, as separate processes, each --runs times (the least kept: on a machine shared with
other work the least is the one least disturbed):
- `python -c pass`, the bare interpreter;
- `screener --help` (issue: within 5x the bare interpreter);
- `screener batch ONE.csv --all-trials`, one candidate of the shipped trials' portfolio file
  to standard output: the whole time to its records (issue: under 0.5 s);
- the same for each shipped trial alone.
CPU seconds are user + system of the child (os.wait4); wall seconds are shown beside them.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]


def timed(command: list[str], runs: int) -> tuple[float, float]:
    """The least CPU seconds and the least wall seconds of `runs` runs of `command`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cpu, wall = [], []
    for _ in range(runs):
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        wall.append(time.perf_counter() - started)
        if os.waitstatus_to_exitcode(status) not in (0, 1):
            sys.exit(f"{' '.join(command)} failed")
        cpu.append(usage.ru_utime + usage.ru_stime)
    return min(cpu), min(wall)


def one_row_file(folder: Path) -> Path:
    """A CSV of one candidate carrying the facts of every shipped trial."""
    from batch_throughput import write_portfolio_csv

    portfolio = write_portfolio_csv(10, 7)
    path = folder / "one.csv"
    with portfolio.open(encoding="utf-8") as stream:
        path.write_text(stream.readline() + stream.readline(), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    from batch_throughput import shipped_rules

    screener = [sys.executable, "-m", "screener"]
    with tempfile.TemporaryDirectory() as folder:
        one = str(one_row_file(Path(folder)))
        rows = [("python -c pass", [sys.executable, "-c", "pass"]),
                ("screener --help", [*screener, "--help"]),
                ("screener batch ONE.csv --all-trials", [*screener, "batch", one, "--all-trials"])]
        rows += [(f"screener batch ONE.csv --trial {r.stem}", [*screener, "batch", one, "--trial", r.stem])
                 for r in shipped_rules()]
        figures = [(label, *timed(command, args.runs)) for label, command in rows]
    bare = figures[0][1]
    print(f"least of {args.runs} runs; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| command | CPU s | x bare Python (CPU) | wall s |")
    print("| --- | ---: | ---: | ---: |")
    for label, cpu, wall in figures:
        print(f"| {label} | {cpu:.3f} | {cpu / bare:.1f} | {wall:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
