"""Ctrl-C during a screening is a pause, whenever it comes.

At a prompt, Ctrl-C stops the reading at once: typed at prompt-toolkit's prompt it is a key that
raises KeyboardInterrupt, a SIGINT stops the prompt the same way (`PromptReader.interrupt`), and
a plain line read is interrupted by the signal. While the dialog works between two prompts
(evaluating the answers, appending a trace record, saving the session), SIGINT is held: the
work is finished first, so a trace record is never half written and an answer is never in the
trace without being in the session, and the next read raises KeyboardInterrupt before it asks
anything. The dialog turns that into its pause, as for Ctrl-C at the prompt: the session
saved, the pause recorded in the trace, "saved; continue with screener resume".

`held` wraps a command (`screener screen`, `screener resume`) so; `Reading` wraps its reader.
Outside the main thread (where no signal handler can be set) nothing is held.
"""
from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from screener.dialog.terminal import Check, Reader

# For tests only: with SCREENER_TEST_HOLD_EVALUATION=N, the first evaluation of N answers in a
# `screen` or `resume` command (the one that takes the N-th answer) waits for Ctrl-C (at most
# HOLD_LIMIT seconds) after writing HOLD_MARK to standard error, so that a test interrupts the
# dialog while it works, never while it waits at a prompt.
HOLD_VARIABLE = "SCREENER_TEST_HOLD_EVALUATION"
HOLD_MARK = "[evaluation held]"
HOLD_LIMIT = 30.0

_Run = TypeVar("_Run", bound=Callable[..., Any])


class _Held:
    """SIGINT while a command runs: kept for the next read, and the read going on stopped."""

    def __init__(self) -> None:
        self.reading: Reader | None = None  # the reader reading now
        self.pending = False
        self.was_held = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True  # kept even when what follows is lost (raised in a weakref callback)
        stop = getattr(self.reading, "interrupt", None)
        if callable(stop):
            stop()  # a prompt: it stops itself, or has ended and the next read stops
        elif self.reading is not None:
            raise KeyboardInterrupt  # a plain line read, blocked in the read itself


_held: _Held | None = None


def held(run: _Run) -> _Run:
    """`run` with SIGINT held while it works, raised only while it reads (see `Reading`)."""

    @functools.wraps(run)
    def holding(*args: Any, **kwargs: Any) -> Any:
        global _held
        if _held is not None or threading.current_thread() is not threading.main_thread():
            return run(*args, **kwargs)
        state = _Held()
        previous = signal.signal(signal.SIGINT, state.handle)
        _held = state
        try:
            return run(*args, **kwargs)
        finally:
            _held = None
            signal.signal(signal.SIGINT, previous)

    return holding  # type: ignore[return-value]


class Reading:
    """A reader under `held`: a Ctrl-C held while the dialog worked stops the next read before
    it asks (KeyboardInterrupt), and one that comes while it reads stops it at once."""

    def __init__(self, reader: Reader):
        self.reader = reader
        if hasattr(reader, "stopped"):  # a prompt checks once it shows, for a Ctrl-C just before
            reader.stopped = lambda: _held is not None and _held.pending

    def read(self, prompt: str, words: list[str], facts: list[str], check: Check) -> str:
        state = _held
        if state is None:
            return self.reader.read(prompt, words, facts, check)
        state.reading = self.reader  # first: a Ctrl-C from here on stops the read itself
        try:
            if state.pending:
                raise KeyboardInterrupt
            return self.reader.read(prompt, words, facts, check)
        except KeyboardInterrupt:
            state.pending = False  # this one stops the dialog here
            raise
        finally:
            state.reading = None


def evaluating(answers: int) -> None:
    """Called before each evaluation of `answers` answers; holds one for tests (HOLD_VARIABLE)."""
    state = _held
    wanted = os.environ.get(HOLD_VARIABLE, "")
    if state is None or state.was_held or not wanted.isdigit() or answers != int(wanted):
        return
    state.was_held = True
    print(HOLD_MARK, file=sys.stderr, flush=True)
    deadline = time.monotonic() + HOLD_LIMIT
    while not state.pending and time.monotonic() < deadline:
        time.sleep(0.01)
