"""Where an internal failure is recorded: the code path, never the data that went through it.

A failure of the screener itself is logged to `$XDG_STATE_HOME/screener/internal-errors.log`
(default `~/.local/state/screener/`), folder 0700 and file 0600. Each entry has the time, the
version, the command, the exception's type and the stack (files, lines, functions, code). The
exception's message and local values are left out: they may quote a candidate's data.
"""
from __future__ import annotations

import datetime as dt
import os
import traceback
from pathlib import Path

from screener import __version__


def log_dir(environ: dict[str, str] | None = None) -> Path:
    """The folder of the internal-failure log."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "screener"


def log_failure(command: str, exc: BaseException) -> Path | None:
    """Append one entry for `exc` to the log; returns the log's path, None if it cannot be written."""
    path = log_dir() / "internal-errors.log"
    lines = [f"--- {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} "
             f"screener {__version__} {command}: {type(exc).__module__}.{type(exc).__qualname__}\n"]
    seen: BaseException | None = exc
    for _ in range(8):  # a chain of causes is short; a cycle must not hang the report
        if seen is None:
            break
        lines.extend(traceback.format_list(traceback.extract_tb(seen.__traceback__)))
        seen = seen.__cause__ or seen.__context__
        if seen is not None:
            lines.append(f"while handling {type(seen).__qualname__}:\n")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, "".join(lines).encode("utf-8", "replace"))
        finally:
            os.close(fd)
    except OSError:
        return None
    return path
