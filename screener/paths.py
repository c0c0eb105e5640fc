"""Paths built from input, kept inside their folders; folders scanned for regular files only.

A trial id, a candidate id or a session id ends up in a file name (`DIR/<trial>/`,
`p1.<TRIAL>.trace.jsonl`, `<candidate>.trace.jsonl`). Such a name comes from a file someone
else may have written (a shared rules folder, a candidate export), so it is checked twice:
a trial id must be a safe name when its rules file is read (`is_safe_name`), and every path
made from a name is built by `inside`, which refuses one that would leave its folder.

A folder that is scanned (a rules folder, the trusted keys, the saved sessions) may hold a
FIFO or a device under an ordinary-looking name: opening a FIFO for reading waits for a
writer for ever. `regular_files` lists only regular files, and `read_regular` opens without
waiting and refuses anything else, so a file swapped for a FIFO after the listing is refused
too.
"""
from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Iterable

from screener.errors import ScreenerError

# Letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters;
# never '..' anywhere, so a name is one path component and never a way up.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z", re.ASCII)
SAFE_NAME_RULE = ("letters, digits, '.', '_' or '-', starting with a letter or a digit, "
                  "at most 64 characters, without '..'")


class PathEscape(ScreenerError):
    """A file name built from input would be a path outside the folder meant for it."""

    code = "path-escape"

    def __init__(self, folder: str, name: str):
        self.folder = folder
        self.name = name
        super().__init__(f"{name!r} cannot be a file name in {folder}: it would lead out of it")


def is_safe_name(name: object) -> bool:
    """True when `name` can be a trial id: one plain file-name component (`SAFE_NAME_RULE`)."""
    return isinstance(name, str) and bool(_SAFE_NAME.match(name)) and ".." not in name


def inside(folder: str | os.PathLike[str], name: str) -> Path:
    """`folder/name`, proven to stay inside `folder`: `name` must be one component (no
    separator, not `.` or `..`, no NUL), and the resolved path must lie under the resolved
    folder (a symbolic link named `name` that points out of it is refused too).
    Raises PathEscape."""
    base = os.fspath(folder)
    if (not name or name in (".", "..") or "\0" in name or "/" in name
            or (os.altsep and os.altsep in name) or os.sep in name):
        raise PathEscape(base, name)
    path = Path(base) / name
    root = os.path.realpath(base)
    if os.path.commonpath([root, os.path.realpath(path)]) != root:
        raise PathEscape(base, name)
    return path


def is_regular(path: str | os.PathLike[str]) -> bool:
    """True when `path` is a regular file (following symbolic links); never opens it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def regular_files(paths: Iterable[Path]) -> list[Path]:
    """The regular files among `paths` (a FIFO, a device, a socket or a folder is left out),
    sorted."""
    return sorted(p for p in paths if is_regular(p))


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The bytes of `path`, which must be a regular file. Opened without blocking, so a FIFO
    or a device is refused at once instead of waiting for a writer. Raises OSError (EINVAL
    with "not a regular file" for anything but a regular file)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        os.set_blocking(fd, True)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
