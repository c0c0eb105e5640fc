"""The screening store's nightly gain: a second run over the same population vs the first.

    python benchmarks/store_rerun.py [--count 20000] [--seed 1]

Writes (or reuses) the all-trials candidate CSV of batch_throughput.py under benchmarks/out/
and runs `python -m screener batch FILE --all-trials -o OUT.jsonl` as a child process:
without a store (a full run), with a new store (the first night), again with the same store
and the same input (a night where nothing changed), and with 1 % of the candidates changed
(one ECOG value each). It reports wall and CPU seconds of each run and the second run's time
as a share of the first's, and checks that every run with the store wrote exactly the bytes
of a full run over the same input; the exit status is 1 if one did not.
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from batch_throughput import OUT, write_portfolio_csv  # noqa: E402


def run(csv_path: Path, out: Path, store: Path | None) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds of the child, and the store's report line."""
    argv = [sys.executable, "-m", "screener", "batch", str(csv_path), "--all-trials", "-o", str(out)]
    if store is not None:
        argv += ["--store", str(store)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"batch failed ({done.returncode}): {done.stderr[-2000:]}")
    report = next((line for line in done.stderr.splitlines() if line.startswith("store:")), "")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, report


def changed_copy(csv_path: Path, every: int) -> Path:
    """The CSV with the ECOG of one candidate in `every` changed."""
    path = csv_path.with_name(csv_path.stem + f"-changed{every}.csv")
    with csv_path.open(encoding="utf-8", newline="") as f, path.open("w", encoding="utf-8", newline="") as g:
        reader, writer = csv.reader(f), csv.writer(g, lineterminator="\n")
        header = next(reader)
        writer.writerow(header)
        column = header.index("ecog")
        for number, row in enumerate(reader):
            if number % every == 0:
                row[column] = "1" if row[column] != "1" else "2"
            writer.writerow(row)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    source = write_portfolio_csv(args.count, args.seed)
    changed = changed_copy(source, 100)
    store = OUT / f"store-{args.count}.db"
    for leftover in (store, Path(str(store) + "-journal")):
        if leftover.exists():
            os.remove(leftover)
    outs = {name: OUT / f"store-{name}.jsonl" for name in ("full", "first", "second", "full-changed", "changed")}
    runs = [
        ("full run, no store", source, outs["full"], None),
        ("first run, new store", source, outs["first"], store),
        ("second run, nothing changed", source, outs["second"], store),
        ("full run of the changed input", changed, outs["full-changed"], None),
        ("run with 1 % of candidates changed", changed, outs["changed"], store),
    ]
    times = {}
    print(f"{args.count} candidates x all shipped trials")
    print(f"{'run':<38} {'wall s':>8} {'CPU s':>8}  store")
    for label, path, out, used in runs:
        wall, cpu, report = run(path, out, used)
        times[label] = (wall, cpu)
        print(f"{label:<38} {wall:8.2f} {cpu:8.2f}  {report}")
    first, second = times["first run, new store"], times["second run, nothing changed"]
    print(f"second run / first run: {second[0] / first[0]:.0%} of the wall time, "
          f"{second[1] / first[1]:.0%} of the CPU time")
    same = (outs["full"].read_bytes() == outs["first"].read_bytes() == outs["second"].read_bytes()
            and outs["full-changed"].read_bytes() == outs["changed"].read_bytes())
    print("outputs with the store byte-identical to full runs:", "yes" if same else "NO")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
