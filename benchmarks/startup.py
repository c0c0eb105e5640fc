"""Start-up of the command line: CPU seconds of whole processes, against a bare Python.

    python benchmarks/startup.py [--runs 5]

Times, as separate processes, each --runs times (the least kept: on a machine shared with
other work the least is the one least disturbed):
- `python -c pass`, the bare interpreter;
- `screener --help` (issue: within 5x the bare interpreter);
- `screener batch ONE.csv --all-trials`, one candidate of the shipped trials' portfolio file
  to standard output: the whole time to its records (issue: under 0.5 s), three ways: without
  a cache (SCREENER_CACHE_DIR unset), with an empty cache folder (a new one for every run:
  the first run of a site, which also fills it), and with a warm one (filled by a run before);
- the same for each shipped trial alone, without a cache and with a warm one.
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


def timed(command: list[str], runs: int, cache: str | None = None) -> tuple[float, float]:
    """The least CPU seconds and the least wall seconds of `runs` runs of `command`; `cache`
    is None (no cache), "empty" (a new empty cache folder each run) or a cache folder."""
    env = dict(os.environ)
    env.pop("SCREENER_CACHE_DIR", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cpu, wall = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as empty:
            if cache is not None:
                env["SCREENER_CACHE_DIR"] = empty if cache == "empty" else cache
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
        warm = str(Path(folder) / "cache")
        every = [*screener, "batch", one, "--all-trials"]
        alone = [(r.stem, [*screener, "batch", one, "--trial", r.stem]) for r in shipped_rules()]
        for command in [every, *(command for _, command in alone)]:
            timed(command, 1, warm)  # fills the warm cache
        rows = [("python -c pass", "", [sys.executable, "-c", "pass"], None),
                ("screener --help", "", [*screener, "--help"], None),
                ("screener batch ONE.csv --all-trials", "none", every, None),
                ("screener batch ONE.csv --all-trials", "empty", every, "empty"),
                ("screener batch ONE.csv --all-trials", "warm", every, warm)]
        for trial, command in alone:
            rows += [(f"screener batch ONE.csv --trial {trial}", "none", command, None),
                     (f"screener batch ONE.csv --trial {trial}", "warm", command, warm)]
        figures = [(label, cache, *timed(command, args.runs, where)) for label, cache, command, where in rows]
    bare = figures[0][2]
    print(f"least of {args.runs} runs; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| command | cache | CPU s | x bare Python (CPU) | wall s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for label, cache, cpu, wall in figures:
        print(f"| {label} | {cache} | {cpu:.3f} | {cpu / bare:.1f} | {wall:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
