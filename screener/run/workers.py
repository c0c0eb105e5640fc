"""Worker processes that never outlive the process that started them.

A worker of a `--jobs N` run holds the caller's standard output and error, and the write end
of its own task queue, so it never sees the queue close: when its parent is killed outright
(`kill -9`, the out-of-memory killer) nothing else would end it, and a script waiting for the
run's output would wait for ever. Each worker therefore asks the kernel to kill it when its
parent dies (Linux: `PR_SET_PDEATHSIG`), and also watches its parent itself, which covers
other systems and a parent that died before the request was made.
"""
from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCH_SECONDS = 1.0  # how often a worker looks whether its parent is still there
ORPHANED = 70  # the exit status of a worker that ended because its parent had gone


def start_worker(parent: int, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
    """A pool initializer: tie this worker's life to `parent` (a pid), then run `initializer`."""
    end_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)
    collect_for_a_long_run()


# Objects a screened candidate leaves behind go with their last reference, not by the cyclic
# collector: its youngest generation is collected after this many allocations, not 700.
YOUNG_COLLECTION = 20_000


def collect_for_a_long_run() -> None:
    """Set this process's garbage collector for a screening run, once the rules are loaded:
    what exists now (rules, rulesets, the unit system) is kept out of every later collection,
    and collections come less often. Each candidate allocates a few thousand objects, nearly
    none in a reference cycle, so the collector would otherwise walk the same live objects
    every few candidates for nothing (a few per cent of a run)."""
    import gc

    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION, *gc.get_threshold()[1:])


def end_with_parent(parent: int) -> None:
    """End this process as soon as the process `parent` is gone (it is started by it)."""
    if sys.platform.startswith("linux"):
        _kill_me_when_parent_dies()
    if os.getppid() != parent:  # it died before the kernel was asked: the signal never comes
        os._exit(ORPHANED)
    threading.Thread(target=_watch, args=(parent,), name="parent-watch", daemon=True).start()


def _kill_me_when_parent_dies() -> None:
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl here: the watch below still ends it
        pass


def _watch(parent: int) -> None:
    # the parent's death re-parents this process (to init or a subreaper): its parent id changes
    stop = threading.Event()
    while not stop.wait(WATCH_SECONDS):
        if os.getppid() != parent:
            os._exit(ORPHANED)
