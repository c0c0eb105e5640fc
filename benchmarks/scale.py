"""Population scale in one run: throughput, memory, the store's second run, start-up.

    python benchmarks/scale.py [--count 100000] [--store-count N] [--seed 7] [--repeat 5]

Reports, on this machine:
- candidates x trials per second, and per CPU second, of `screener batch --all-trials` (every
  shipped trial) over COUNT realistic candidates with `--jobs 1`, `--jobs 2` and
  `--cluster local:2`, with the peak memory of the largest process and of all of them (PSS);
  the first run's records are checked against the trials' references (batch_throughput.py),
  and every other run must write the same bytes;
- the screening store: a first run with a new store, then a second over the same input, wall
  and CPU seconds and the second's share of the first (store_rerun.py);
- the client of a `tcp://` cluster: a Dask scheduler and two single-threaded workers started
  as processes of their own on loopback, and the CPU seconds of the `screener batch --cluster`
  process alone over CLIENT_COUNT candidates, for every trial and for one, less a one-row
  run's: what the client spends per input row and per record, whatever the workers do;
- start-up: `screener --help` against a bare `python -c pass` (the median of REPEAT runs each),
  and the time to the first record of a one-row `--all-trials` batch, without a compile cache
  and with a warm one (SCREENER_CACHE_DIR, a temporary folder filled by a first run).

CPU seconds are of the screener process and its children (the local cluster's workers are its
children): on a machine shared with other work they vary much less than wall time. The exit
status is 1 if any record differs from its trial's reference or the store's output differs
from a full run's.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from batch_throughput import OUT, ROOT, Run, _mb, portfolio_mismatches, run_batch, shipped_rules, \
    write_portfolio_csv  # noqa: E402
import store_rerun  # noqa: E402


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def throughput(count: int, seed: int, python: str) -> tuple[list[Run], int]:
    rules = shipped_rules()
    csv_path = write_portfolio_csv(count, seed)
    runs: list[Run] = []
    bad = 0
    first: bytes | None = None
    for jobs, cluster in ((1, None), (2, None), (1, "local:2")):
        run, out = run_batch(csv_path, count, jobs, python, trials=len(rules), cluster=cluster)
        print(f"  {run.label}: {run.rate:,.0f} candidates x trials/s, {run.cpu_rate or 0:,.0f} per CPU "
              "second", file=sys.stderr)
        if first is None:
            # the reference decides each candidate far slower than the engine: it checks the
            # first run, and every other run must write the very same bytes
            bad += portfolio_mismatches(out, csv_path, rules)
            first = out.read_bytes()
        elif out.read_bytes() != first:
            print(f"  {run.label}: output differs from the --jobs 1 run's", file=sys.stderr)
            bad += 1
        runs.append(run)
    return runs, bad


def store_second_run(count: int, seed: int) -> tuple[list[tuple[str, float, float, str]], bool]:
    """(label, wall, CPU, the store's report) of a full run, a first and a second run with a
    store; and whether the store's outputs are the full run's bytes."""
    csv_path = write_portfolio_csv(count, seed)
    store = OUT / f"scale-{count}.store"
    for leftover in (store, store.with_name(store.name + "-journal")):
        leftover.unlink(missing_ok=True)
    outs = [OUT / f"scale-{count}-{name}.jsonl" for name in ("full", "first", "second")]
    rows = [("without a store", *store_rerun.run(csv_path, outs[0], None)),
            ("first run, new store", *store_rerun.run(csv_path, outs[1], store)),
            ("second run, same input", *store_rerun.run(csv_path, outs[2], store))]
    same = all(out.read_bytes() == outs[0].read_bytes() for out in outs[1:])
    for out in outs:
        out.unlink()
    store.unlink(missing_ok=True)
    return rows, same


def _client_cpu(python: str, csv_path: Path, address: str, chosen: list[str]) -> float:
    """CPU seconds of one `screener batch --cluster ADDRESS` process alone (its workers and
    scheduler are not its children)."""
    child = subprocess.Popen([python, "-m", "screener", "batch", str(csv_path), "-o", str(OUT / "scale-client.jsonl"),
                              "--cluster", address, *chosen], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=_env(), cwd=ROOT)
    _, _, usage = os.wait4(child.pid, 0)
    return usage.ru_utime + usage.ru_stime


def tcp_client(python: str, count: int, seed: int) -> tuple[float, float]:
    """The client's own CPU seconds per input row and per record against a `tcp://` cluster
    of two workers on loopback: from runs over `count` candidates with every trial and with
    one, each less a one-row run's (start-up, connecting, the version check)."""
    import socket

    dask = str(Path(python).with_name("dask"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="scale-dask-") as scratch:
        scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=scratch)
        workers = subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--nworkers", "2", "--no-dashboard",
                                    "--local-directory", scratch],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=scratch)
        try:
            time.sleep(8)  # the scheduler listening, the workers registered
            csv_path, one = write_portfolio_csv(count, seed), write_portfolio_csv(1, seed)
            first = shipped_rules()[0].stem
            cpu = {(n, chosen): _client_cpu(python, path, address, ["--all-trials"] if chosen == "all" else
                                             ["--trial", first])
                   for n, path in ((1, one), (count, csv_path)) for chosen in ("all", "one")}
        finally:
            workers.terminate()
            scheduler.terminate()
            workers.wait()
            scheduler.wait()
    trials = len(shipped_rules())
    every = (cpu[count, "all"] - cpu[1, "all"]) / (count - 1)  # a row and its records, every trial
    alone = (cpu[count, "one"] - cpu[1, "one"]) / (count - 1)  # a row and one record
    per_record = (every - alone) / (trials - 1)
    return alone - per_record, per_record


def _timed(argv: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def first_record(python: str, seed: int, cache: Path | None = None) -> tuple[float, float]:
    """Wall seconds from start to the first record of a one-row all-trials batch on standard
    output, and the whole run's wall seconds; with `cache`, SCREENER_CACHE_DIR names it."""
    one = OUT / "scale-one-row.csv"
    with write_portfolio_csv(1, seed).open(encoding="utf-8") as source:
        one.write_text(source.read(), encoding="utf-8")
    env = _env()
    env.pop("SCREENER_CACHE_DIR", None)
    if cache is not None:
        env["SCREENER_CACHE_DIR"] = str(cache)
    started = time.perf_counter()
    child = subprocess.Popen([python, "-m", "screener", "batch", str(one), "--all-trials"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    assert child.stdout is not None
    child.stdout.readline()
    first = time.perf_counter() - started
    child.stdout.read()
    child.wait()
    return first, time.perf_counter() - started


def start_up(python: str, repeat: int, seed: int) -> list[tuple[str, float, float]]:
    bare = [_timed([python, "-c", "pass"]) for _ in range(repeat)]
    helped = [_timed([python, "-m", "screener", "--help"]) for _ in range(repeat)]
    firsts = [first_record(python, seed) for _ in range(repeat)]
    with tempfile.TemporaryDirectory(prefix="screener-cache-") as cache:
        first_record(python, seed, Path(cache))  # fills the cache
        warm = [first_record(python, seed, Path(cache)) for _ in range(repeat)]
    return [
        ("python -c pass", statistics.median(w for w, _ in bare), statistics.median(c for _, c in bare)),
        ("screener --help", statistics.median(w for w, _ in helped), statistics.median(c for _, c in helped)),
        ("first record, one-row --all-trials batch, no cache", statistics.median(f for f, _ in firsts),
         float("nan")),
        ("whole one-row --all-trials batch, no cache", statistics.median(w for _, w in firsts), float("nan")),
        ("first record, one-row --all-trials batch, warm SCREENER_CACHE_DIR",
         statistics.median(f for f, _ in warm), float("nan")),
        ("whole one-row --all-trials batch, warm SCREENER_CACHE_DIR", statistics.median(w for _, w in warm),
         float("nan")),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="candidates (default 100,000)")
    parser.add_argument("--store-count", type=int, help="candidates of the store runs (default: --count)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each start-up measurement (median)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the screener runs")
    parser.add_argument("--client-count", type=int, default=20_000,
                        help="candidates of the tcp:// client runs (default 20,000; 0 leaves them out)")
    args = parser.parse_args(argv)
    rules = shipped_rules()

    runs, bad = throughput(args.count, args.seed, args.python)
    client = tcp_client(args.python, args.client_count, args.seed) if args.client_count > 1 else None
    store_rows, same = store_second_run(args.store_count or args.count, args.seed)
    starts = start_up(args.python, args.repeat, args.seed)

    print(f"\nmachine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.count:,} realistic candidates (seed "
          f"{args.seed}) x {len(rules)} shipped trials ({', '.join(r.stem for r in rules)})")
    print("\n| run | candidates x trials | seconds | per second | CPU seconds | per CPU second "
          "| CPU seconds of the screener process itself | peak RSS largest process MB "
          "| peak PSS all processes MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for run in runs:
        print(f"| {run.label.removeprefix('screener batch ')} | {run.count:,} | {run.seconds:,.1f} | "
              f"{run.rate:,.0f} | {run.cpu_seconds or 0:,.1f} | {run.cpu_rate or 0:,.0f} | "
              f"{run.own_cpu_seconds or 0:,.1f} | {_mb(run.peak_process_mb)} | {_mb(run.peak_tree_pss_mb)} |")
    cluster = runs[-1]
    if cluster.own_cpu_seconds:
        print(f"{cluster.label.removeprefix('screener batch ')}: the screener process itself (the client "
              f"reading, sending, receiving and writing, and the local cluster's scheduler; start-up "
              f"included) used {cluster.own_cpu_seconds:,.1f} CPU s for {cluster.count:,} candidates x trials")
    print(f"records differing from their trial's reference: {bad}")
    if client is not None:
        print(f"\nthe client of a tcp:// cluster (two workers of their own), {args.client_count:,} candidates: "
              f"{client[0] * 1e6:,.0f} us of CPU per input row (reading and sending it) and "
              f"{client[1] * 1e6:,.0f} us per record (receiving and writing it)")

    count = args.store_count or args.count
    print(f"\nstore, {count:,} candidates x {len(rules)} trials:")
    print("| run | seconds | CPU seconds | store |")
    print("| --- | ---: | ---: | --- |")
    for label, wall, cpu, report in store_rows:
        print(f"| {label} | {wall:,.1f} | {cpu:,.1f} | {report.removeprefix('store: ')} |")
    first, second = store_rows[1], store_rows[2]
    print(f"second run / first run: {second[1] / first[1]:.2f} (CPU: {second[2] / max(first[2], 1e-9):.2f}); "
          f"outputs identical to a full run's: {'yes' if same else 'NO'}")

    print(f"\nstart-up, median of {args.repeat}:")
    print("| what | seconds | CPU seconds |")
    print("| --- | ---: | ---: |")
    for label, wall, cpu in starts:
        print(f"| {label} | {wall:.3f} | {'-' if cpu != cpu else f'{cpu:.3f}'} |")
    print(f"screener --help / python -c pass: {starts[1][1] / starts[0][1]:.1f}x")
    return 1 if bad or not same else 0


if __name__ == "__main__":
    sys.exit(main())
