"""What loading and compiling a trial produce, kept in the folder SCREENER_CACHE_DIR names.

Checking a rules file (YAML, types, every unit through the unit system) and compiling it take
most of a process's start; their results depend only on the file's bytes, the path it is
shown as, and the code that checked and compiled it. So each result is kept as a file in
`$SCREENER_CACHE_DIR/compiled/`, named by a hash of all of that:
- the file's content hash and shown path (for a compiled trial: a hash of the Trial itself);
- the screener's version and a hash of every .py file of the screener package, so a changed
  line of code is a new key (the cache is never trusted across versions or code changes);
- the Python version and the names of the installed distributions (`pint-0.25.3.dist-info`
  and the like) on the import path, so an upgraded YAML reader or unit system is too.

Without SCREENER_CACHE_DIR nothing is read or written. An entry is JSON (`serial`), never
pickle: reading one never runs code. It holds its key and a SHA-256 of its body, and is used
only when both match, when it is a regular file owned by the user and writable by no one
else, and when it decodes; anything else (truncated, corrupt, foreign, from another version,
edited) is ignored and written again. Entries are written to a temporary file (mode 0600) in
the folder (mode 0700) and renamed into place, so processes reading and writing at once (a
batch's workers, a cluster's) see a whole entry or none. The folder may be emptied at any time.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from screener.rules import serial

CACHE_VARIABLE = "SCREENER_CACHE_DIR"
_FOLDER = "compiled"
_FORMAT = "screener-cache-1"
_MAX_BYTES = 64 * 1024 * 1024  # larger is not an entry this code writes
_MISSING = object()
_OWN = Path(__file__).resolve().parent.parent  # the screener package

T = TypeVar("T")


def folder(create: bool = True) -> Path | None:
    """The cache folder, made when missing (mode 0700) unless `create` is False; None when
    SCREENER_CACHE_DIR is not set, or the folder is not there and cannot be made, or someone
    else could write into it."""
    named = os.environ.get(CACHE_VARIABLE)
    if not named:
        return None
    path = Path(named) / _FOLDER
    try:
        if create:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        found = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o022:
        return None
    return path


@functools.lru_cache(maxsize=1)
def environment() -> str:
    """A hash of what shapes a cached result besides its input: the screener's version and
    source, the Python version, and the installed distributions' names (with versions)."""
    from screener import __version__

    digest = hashlib.sha256(f"{_FORMAT}\0{__version__}\0{sys.version}\0".encode())
    for path in sorted(_OWN.rglob("*.py")):
        digest.update(path.relative_to(_OWN).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    names: set[str] = set()
    for entry in sys.path:  # the folders' own paths are left out: they differ by working folder
        try:
            names.update(n for n in os.listdir(entry or ".") if n.endswith((".dist-info", ".egg-info")))
        except OSError:
            continue
    digest.update("\0".join(sorted(names)).encode())
    return digest.hexdigest()


def _entry(place: Path, kind: str, parts: Sequence[str]) -> tuple[Path, str] | None:
    """The path of the entry for (`kind`, `parts`) and its full key; None when the screener's
    own files cannot be read to make the key."""
    try:
        key = hashlib.sha256(json.dumps([_FORMAT, kind, environment(), *parts]).encode()).hexdigest()
    except (OSError, ValueError, TypeError):
        return None
    return place / f"{kind}-{key[:40]}.json", key


def _read(path: Path, key: str) -> Any:
    """The value of the entry at `path` and the hash of its body, when it is whole and was
    written for `key`; else _MISSING."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return _MISSING
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o022 \
                or found.st_size > _MAX_BYTES:
            return _MISSING
        with os.fdopen(fd, "rb") as stream:
            fd = -1
            head, _, body = stream.read(_MAX_BYTES + 1).partition(b"\n")
        checksum = hashlib.sha256(body).hexdigest()
        if json.loads(head) != {"format": _FORMAT, "key": key, "sha256": checksum}:
            return _MISSING
        return serial.decode(json.loads(body)), checksum
    except Exception:  # noqa: BLE001 - whatever is wrong with an entry, it is not used
        return _MISSING
    finally:
        if fd >= 0:
            os.close(fd)


def _body(value: Any) -> bytes:
    """The text an entry keeps `value` as (and its digest is taken of); raises NotEncoded or
    the encoder's own errors for a value that cannot be written down."""
    return json.dumps(serial.encode(value), ensure_ascii=False, separators=(",", ":")).encode()


def _write(place: Path, path: Path, key: str, value: Any) -> bytes | None:
    """Write `value` as the entry at `path`, when it comes back from its text equal; returns
    the body written (None when nothing was)."""
    try:
        body = _body(value)
        if serial.decode(json.loads(body)) != value:
            return None
    except Exception:  # noqa: BLE001 - a value that cannot be written down and read back is not kept
        return None
    header = json.dumps({"format": _FORMAT, "key": key, "sha256": hashlib.sha256(body).hexdigest()})
    import tempfile  # here: only a process that writes an entry needs it

    temporary = None
    try:
        fd, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=place)  # mode 0600
        with os.fdopen(fd, "wb") as stream:
            stream.write(header.encode() + b"\n" + body)
        os.replace(temporary, path)
        temporary = None
    except OSError:
        return None
    finally:
        if temporary is not None:
            try:
                os.unlink(temporary)
            except OSError:
                pass
    return body


# The hash of the text each value read from or written to the cache was kept as: a compiled
# trial's key, without writing the Trial again (values kept alive here, so ids stay theirs).
_digests: dict[int, tuple[Any, str]] = {}
_MAX_DIGESTS = 256


def _remember_digest(value: Any, checksum: str) -> None:
    if len(_digests) >= _MAX_DIGESTS:
        _digests.clear()
    _digests[id(value)] = (value, checksum)


def digest(value: Any) -> str | None:
    """A hash of `value`'s exact text as the cache keeps it; None when it has none."""
    known = _digests.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    try:
        body = _body(value)
    except Exception:  # noqa: BLE001 - a value that cannot be written down has no digest
        return None
    checksum = hashlib.sha256(body).hexdigest()
    _remember_digest(value, checksum)
    return checksum


def remembered(kind: str, key: Callable[[], Sequence[str] | None], build: Callable[[], T],
               expected: type = object) -> T:
    """The value `build()` returns, read from the cache when an entry for (`kind`, `key()`)
    is there and holds an `expected`, else built and kept. `key` is called only when there is
    a cache; a key of None means the value is not kept. Exceptions of `build` propagate; the
    cache's own never do."""
    place = folder()
    parts = key() if place is not None else None
    entry = _entry(place, kind, parts) if place is not None and parts is not None else None
    if place is None or entry is None:
        return build()
    path, name = entry
    found = _read(path, name)
    if found is not _MISSING and isinstance(found[0], expected):
        value, checksum = found
        _remember_digest(value, checksum)
        return value  # type: ignore[no-any-return]
    value = build()
    body = _write(place, path, name, value)
    if body is not None:
        _remember_digest(value, hashlib.sha256(body).hexdigest())
    return value


def read(kind: str, parts: Sequence[str]) -> Any:
    """The value kept for (`kind`, `parts`), or None when there is none (or no cache)."""
    place = folder(create=False)
    entry = _entry(place, kind, parts) if place is not None else None
    if entry is None:
        return None
    found = _read(*entry)
    return None if found is _MISSING else found[0]


def write(kind: str, parts: Sequence[str], value: Any) -> None:
    """Keep `value` for (`kind`, `parts`), when there is a cache and the value can be kept."""
    place = folder()
    entry = _entry(place, kind, parts) if place is not None else None
    if entry is not None:
        _write(place, *entry, value)
