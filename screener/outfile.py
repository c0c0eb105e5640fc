"""Result files that are complete or absent: written under a temporary name, renamed at the end.

The temporary file lives in the destination folder (so the final rename is atomic), is
readable by its owner only, and is removed when the run fails. Until `commit`, whatever was at
the destination before is untouched; a killed process leaves only a hidden `.part` file.
"""
from __future__ import annotations

import io
import os
import tempfile
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


class AtomicOutput:
    """A text file that appears at `path` only when `commit` is called."""

    def __init__(self, path: str):
        self.path = path
        folder = os.path.dirname(os.path.abspath(path))
        fd, self.temporary = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".part", dir=folder)  # mode 0600
        self.stream: TextIO = io.open(fd, "w", encoding="utf-8", newline="")

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
