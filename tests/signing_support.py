"""Shared inputs for the signature and forgery tests: fixed keys, signed traces, a forger."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit_support import CANDIDATES, NOW, tiny_trial
from screener.audit.artifacts import CandidateArtifacts, write_candidate_artifacts
from screener.audit.sign import Signer
from screener.audit.trace import GENESIS, Source, canonical, record_hash
from screener.engine import Screener

# Fixed keys, so signed traces and letters are the same on every run (Ed25519 is deterministic).
SITE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))


def signer(name: str = "Dr. A. Investigator", meaning: str = "authorship",
           key: Ed25519PrivateKey = SITE_KEY) -> Signer:
    return Signer.from_key(name, meaning, key)


def write_public(path: Path, key: Ed25519PrivateKey = SITE_KEY) -> Path:
    path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def trusted_dir(directory: Path, *keys: Ed25519PrivateKey) -> Path:
    """A trusted-keys folder holding the public halves of `keys` (default: the site key)."""
    directory.mkdir(exist_ok=True)
    for number, key in enumerate(keys or (SITE_KEY,)):
        write_public(directory / f"key{number}.pub", key)
    return directory


def signed_candidate(directory: Path, kind: str, candidate_id: str = "P-001",
                     by: Signer | None = None) -> CandidateArtifacts:
    """One of CANDIDATES screened through the real engine, its trace signed, its letters written."""
    trial = tiny_trial()
    facts = CANDIDATES[kind]
    result = Screener(trial).evaluate(facts)
    sources = {name: (value, Source.batch("candidates.csv", 2, name))
               for name, value in facts.items()}
    return write_candidate_artifacts(trial, candidate_id, sources, result, directory, directory,
                                     "Dr. A. Investigator", NOW, signer=by or signer())


def records_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_rechained(path: Path, records: list[dict[str, Any]]) -> None:
    """Write `records` as a forger without the key would: every seq, prev, hash and the end
    record's trace hash recomputed, signature records kept as they were signed."""
    out = b""
    prev = GENESIS
    for seq, record in enumerate(records):
        record = {k: v for k, v in record.items() if k != "hash"}
        record.update(seq=seq, prev=prev)
        if record["type"] == "end":
            record.update(records=seq, trace_hash=hashlib.sha256(out).hexdigest())
        record["hash"] = record_hash(record)
        prev = record["hash"]
        out += (canonical(record) + "\n").encode("utf-8")
    path.write_bytes(out)
