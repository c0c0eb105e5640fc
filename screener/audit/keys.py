"""Signing keys: Ed25519 key pairs for a person or a site, and the folder of trusted keys.

A key pair is two files: the private key at `PATH` (PKCS#8 PEM, mode 0600, encrypted with a
passphrase when one is given) and the public key at `PATH.pub` (SubjectPublicKeyInfo PEM, the
form `openssl pkey -pubin` reads). The public file is meant to be handed to auditors, so it is
readable by all (0644); it holds nothing secret. A key is named by its fingerprint: the sha256
of its 32 raw public bytes, as 64 hex digits (`readable_fingerprint` groups them for people).
A trusted-keys folder is any directory of `.pub` files.

The cryptography is the `cryptography` library's (pyca): nothing here is hand-made.
"""
from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

from screener.audit.trace import create_exclusive, write_all
from screener.errors import ScreenerError
from screener.paths import read_regular

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey, Ed25519PublicKey,
    )

# `cryptography` is imported where a key is used, not with this module: every command loads
# this module, and the library adds several megabytes and milliseconds to each start.

PASSPHRASE_ENV = "SCREENER_KEY_PASSPHRASE"
PUBLIC_SUFFIX = ".pub"


class SigningKeyError(ScreenerError):
    """A key cannot be made, read or used: `path` names the file, `message` says why."""

    code = "key"

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


def fingerprint(public: Ed25519PublicKey) -> str:
    """sha256 (hex) of the key's 32 raw public bytes."""
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def readable_fingerprint(hex_digest: str) -> str:
    """A fingerprint for people: groups of four hex digits, e.g. `3f2a 9c0d ...`."""
    return " ".join(hex_digest[i:i + 4] for i in range(0, len(hex_digest), 4))


def public_raw_b64(public: Ed25519PublicKey) -> str:
    """The 32 raw public bytes, base64: how a signature record carries its key."""
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_from_b64(text: str) -> Ed25519PublicKey:
    """The public key a `public_raw_b64` text holds; raises ValueError when it is not one."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    raw = base64.b64decode(text.encode("ascii"), validate=True)
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True, slots=True)
class KeyPair:
    """What `generate` wrote: the two paths and the key's fingerprint."""

    private_path: Path
    public_path: Path
    fingerprint: str


def generate(path: str | os.PathLike[str], passphrase: bytes | None = None) -> KeyPair:
    """Make a new Ed25519 key pair: the private key at `path`, the public key at `path.pub`.

    Neither file may exist (nothing is ever overwritten); the private key is mode 0600 and
    encrypted with `passphrase` when one is given. Returns the KeyPair; raises SigningKeyError when
    a file exists or cannot be written (then neither is left behind).
    """
    private_path = Path(path)
    public_path = Path(f"{os.fspath(path)}{PUBLIC_SUFFIX}")
    for target in (private_path, public_path):
        if os.path.lexists(target):
            raise SigningKeyError(os.fspath(target), "already exists; keys are never overwritten")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase
        else serialization.NoEncryption())
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    encryption)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    written: list[Path] = []
    try:
        for target, data, mode in ((private_path, private_pem, 0o600),
                                   (public_path, public_pem, 0o644)):
            fd = _create(target, mode)
            written.append(target)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
    except (SigningKeyError, OSError) as error:
        for target in written:
            target.unlink(missing_ok=True)
        if isinstance(error, SigningKeyError):
            raise
        raise SigningKeyError(os.fspath(written[-1] if written else private_path),
                        f"cannot write: {error.strerror}") from None
    return KeyPair(private_path, public_path, fingerprint(key.public_key()))


def _create(path: Path, mode: int) -> int:
    if mode == 0o600:
        try:
            return create_exclusive(path)
        except ScreenerError as error:
            raise SigningKeyError(os.fspath(path), getattr(error, "message", str(error))) from None
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    except OSError as error:
        raise SigningKeyError(os.fspath(path), f"cannot create: {error.strerror}") from None
    os.fchmod(fd, mode)  # the umask must not make the public key private or the reverse
    return fd


def load_private(path: str | os.PathLike[str], passphrase: bytes | None) -> Ed25519PrivateKey:
    """The Ed25519 private key at `path`, decrypted with `passphrase` when it is encrypted.

    Raises SigningKeyError with a plain reason: unreadable, not a private key, not Ed25519, a
    passphrase needed, or the wrong passphrase.
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    name = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SigningKeyError(name, f"cannot read the key: {error.strerror}") from None
    encrypted = b"ENCRYPTED" in data.split(b"\n", 1)[0]
    if encrypted and not passphrase:
        raise SigningKeyError(name, "the key is protected by a passphrase: give it with "
                              f"--passphrase-file FILE or ${PASSPHRASE_ENV}")
    try:
        key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except TypeError:
        raise SigningKeyError(name, "the key is not protected by a passphrase, but one was given") \
            from None
    except ValueError:
        if encrypted:
            raise SigningKeyError(name, "wrong passphrase, or the key file is damaged") from None
        raise SigningKeyError(name, "not a PEM private key (a .pub file is the public half)") from None
    except UnsupportedAlgorithm:
        raise SigningKeyError(name, "not a key this screener can read") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(name, "not an Ed25519 key; make one with `screener keygen`")
    return key


def load_public(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM file at `path`; raises SigningKeyError when it is not one."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    name = os.fspath(path)
    try:
        data = read_regular(path)  # a FIFO named *.pub is refused, never waited on
        key = serialization.load_pem_public_key(data)
    except OSError as error:
        raise SigningKeyError(name, f"cannot read the key: {error.strerror}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SigningKeyError(name, "not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(name, "not an Ed25519 public key")
    return key


def trusted_keys(directory: str | os.PathLike[str]) -> dict[str, Path]:
    """The `.pub` files of a trusted-keys folder, by fingerprint.

    Raises SigningKeyError when the folder cannot be read or one of its `.pub` files is not an
    Ed25519 public key (a damaged trust list is reported, not half used).
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise SigningKeyError(os.fspath(folder), "not a folder of trusted .pub keys")
    found: dict[str, Path] = {}
    for path in sorted(folder.glob(f"*{PUBLIC_SUFFIX}")):
        found[fingerprint(load_public(path))] = path
    return found


def read_passphrase(file: str | os.PathLike[str] | None) -> bytes | None:
    """The passphrase from `file` (its first line), else from $SCREENER_KEY_PASSPHRASE, else None.

    Raises SigningKeyError when the file cannot be read or its first line is empty.
    """
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            raise SigningKeyError(os.fspath(file), f"cannot read the passphrase: {reason}") from None
        line = text.splitlines()[0] if text else ""
        if not line:
            raise SigningKeyError(os.fspath(file), "the passphrase file is empty")
        return line.encode("utf-8")
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode("utf-8") if value else None
