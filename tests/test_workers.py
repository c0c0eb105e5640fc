"""Worker processes end with the run that started them.

`kill -9` of a `--jobs 2` batch once left its workers alive for ever, holding the caller's
standard output and error open, so a script reading them never saw their end.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT, running_batch


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its exit status is left


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if _alive(pid)]


pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")


def test_kill_9_of_a_parallel_batch_left_its_workers_alive_for_ever(tmp_path):
    # one trial: several trials (and match) start their workers through the same pool
    process = running_batch(tmp_path, tmp_path / "out.jsonl", subprocess.PIPE, "--jobs", "2",
                            "--trial", "NCT03862768", env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")})
    workers: list[int] = []
    try:
        workers = _children(process.pid)  # the two workers and multiprocessing's resource tracker
        assert len(workers) == 3
        process.kill()
        # what a calling script sees: the end of the run's output, once nothing holds it open
        process.communicate(timeout=60)
        assert _wait_gone(workers, 30) == []
    finally:
        for pid in [process.pid, *filter(_alive, workers)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=30)


# The kernel's death signal is Linux only; elsewhere (and if the parent died before it was
# asked for) the worker's own watch of its parent ends it. Here the watch alone is tried.
WATCHED = textwrap.dedent("""
    import os, sys, time
    import screener.run.workers as workers
    workers._kill_me_when_parent_dies = lambda: None
    workers.WATCH_SECONDS = 0.1
    parent = os.getppid()
    print(os.getpid(), flush=True)
    workers.end_with_parent(parent)
    time.sleep(300)
""")

MIDDLE = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
    time.sleep(300)
""")


def test_a_worker_whose_parent_dies_ends_by_its_own_watch_too(tmp_path):
    middle = subprocess.Popen([sys.executable, "-c", MIDDLE, WATCHED], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        worker = int(middle.stdout.readline())
        time.sleep(0.3)
        assert _alive(worker)  # its parent lives: the watch leaves it be
        middle.kill()
        middle.wait(timeout=30)
        assert _wait_gone([worker], 30) == []
    finally:
        middle.kill()
        middle.wait(timeout=30)
        middle.stdout.close()
