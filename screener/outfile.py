"""Result files that are complete or absent: written under a temporary name, renamed at the end.

The temporary file lives in the destination folder (so the final rename is atomic), is
readable by its owner only, and is removed when the run fails. Until `commit`, whatever was at
the destination before is untouched. A process killed outright (SIGKILL, power loss) cannot
remove its hidden `.part` file, full of candidate results: the next run writing to the same
path does. Each run holds an exclusive lock on its own `.part` file while it writes (the
kernel drops it when the process dies, however it dies), so a `.part` file nobody holds a lock
on, and older than `ABANDONED_AFTER` seconds, is one left behind.
"""
from __future__ import annotations

import fcntl
import io
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import TextIO

from screener.errors import ScreenerError


class OutputRefused(ScreenerError):
    """The output path cannot be used: it is the input, a link, a folder, or has no folder."""

    code = "output-refused"


def check_output(output: str, inputs: list[str]) -> None:
    """Refuse an output path that would destroy an input or follow a link; raises OutputRefused."""
    path = Path(output)
    if path.is_symlink():
        raise OutputRefused(f"{output} is a symbolic link; name the file itself")
    folder = path.parent
    if not folder.is_dir():
        raise OutputRefused(f"the folder {str(folder)!r} of {output} does not exist")
    if path.is_dir():
        raise OutputRefused(f"{output} is a folder; name a file ending .jsonl or .csv")
    for name in inputs:
        if name == "-":
            continue
        if os.path.realpath(name) == os.path.realpath(output) or (
                path.exists() and Path(name).exists() and os.path.samefile(name, output)):
            raise OutputRefused(f"{output} is the input file; write the results elsewhere")


# A .part file younger than this may belong to a run that has created it and not yet locked
# it (a few microseconds apart): it is left for a later run to judge.
ABANDONED_AFTER = 10.0


class AtomicOutput:
    """A text file that appears at `path` only when `commit` is called."""

    def __init__(self, path: str):
        self.path = path
        folder = os.path.dirname(os.path.abspath(path))
        prefix = f".{os.path.basename(path)}."
        fd, self.temporary = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=folder)  # mode 0600
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "in use", until this process ends
        except OSError:
            pass  # a file system without locks: there no .part file is ever judged abandoned
        self.stream: TextIO = io.open(fd, "w", encoding="utf-8", newline="")
        self.removed = remove_abandoned(folder, prefix, keep=self.temporary)

    def commit(self) -> None:
        """Flush, fsync and rename into place (replacing any previous file); raises OSError."""
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()
        os.replace(self.temporary, self.path)
        _sync_folder(os.path.dirname(os.path.abspath(self.path)))

    def discard(self) -> None:
        """Remove the temporary file; the destination keeps its previous content."""
        try:
            self.stream.close()
        except OSError:
            pass  # a full disk fails the final flush too; the file goes anyway
        try:
            os.unlink(self.temporary)
        except FileNotFoundError:
            pass


def remove_abandoned(folder: str, prefix: str, keep: str = "") -> int:
    """Remove the `prefix*.part` files of `folder` that no running process holds (a run killed
    before it could clean up); returns how many were removed. Only regular files are touched,
    and never through a link; errors leave the file where it is."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".part")) or entry.path == keep:
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or \
                    now - entry.stat(follow_symlinks=False).st_mtime < ABANDONED_AFTER:
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its run is alive
            os.unlink(entry.path)
            removed += 1
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _sync_folder(folder: str) -> None:
    """Make the rename itself durable; not every file system lets a folder be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
