"""The compile cache (SCREENER_CACHE_DIR): a warm start screens exactly as a cold one, and an
entry that is damaged, foreign or from another version is never used."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

import screener
from screener import engine
from screener.cli import main
from screener.rules import cache, check, serial

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = ROOT / "examples" / "candidates.csv"


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(cache.CACHE_VARIABLE, str(tmp_path / "cache"))
    monkeypatch.delenv("SCREENER_TRIALS_PATH", raising=False)
    yield tmp_path / "cache" / "compiled"
    cache.environment.cache_clear()  # a test may have faked the version


def _batch(tmp_path: Path, name: str, *trials: str) -> bytes:
    """The output of `screener batch` on a few of the example candidates, for every trial or
    the ones named."""
    rows = tmp_path / "candidates.csv"
    if not rows.exists():
        rows.write_text("".join(CANDIDATES.read_text(encoding="utf-8").splitlines(True)[:6]), encoding="utf-8")
    out = tmp_path / name
    chosen = [arg for trial in trials for arg in ("--trial", trial)] or ["--all-trials"]
    assert main(["batch", str(rows), "-o", str(out), *chosen]) in (0, 1)
    return out.read_bytes()


def _spy(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, seen: list) -> None:
    original = getattr(owner, name)

    def spy(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]
    monkeypatch.setattr(owner, name, spy)


def test_a_warm_start_screens_byte_for_byte_as_a_cold_one_from_equal_trials_and_rulesets(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    built_trials: list = []
    compiled: list = []
    with monkeypatch.context() as cold:
        _spy(cold, check, "_checked_trial", built_trials)
        _spy(cold, engine, "compile_rulesets", compiled)
        first = _batch(tmp_path, "cold.jsonl")
    assert len(built_trials) == len(compiled) == 3  # every shipped trial, checked and compiled

    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    entries = sorted(cache_dir.iterdir())
    assert entries and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in entries)

    def not_again(*args, **kwargs):
        raise AssertionError("checked or compiled again with a warm cache")
    monkeypatch.setattr(check, "_checked_trial", not_again)
    monkeypatch.setattr(engine, "compile_rulesets", not_again)
    read: list = []
    original = cache.remembered
    monkeypatch.setattr(cache, "remembered", lambda *args: read.append(original(*args)) or read[-1])
    assert _batch(tmp_path, "warm.jsonl") == first
    # rebuilt from the files, equal to what checking and compiling gave (and not the same objects)
    assert read == [*built_trials, *compiled]
    assert not any(a is b for a, b in zip(read, [*built_trials, *compiled]))


def _corrupt(entries: list[Path]) -> None:
    """Damage each entry a different way: cut short, garbage, a byte changed, another's text."""
    kinds = [
        lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
        lambda p: p.write_bytes(b"\x00not json\n{]"),
        lambda p: p.write_bytes(p.read_bytes().replace(b'"decimal":"', b'"decimal":"9', 1)
                                if b'"decimal":"' in p.read_bytes() else p.read_bytes()[:-3] + b"}}}"),
        lambda p: p.write_bytes(entries[0].read_bytes() if p != entries[0] else b""),
    ]
    for index, path in enumerate(entries):
        kinds[index % len(kinds)](path)


def test_damaged_entries_are_ignored_and_written_again(tmp_path: Path, cache_dir: Path):
    trials = ("NCT03862768", "NCT06534411")  # the two quickest to compile
    first = _batch(tmp_path, "cold.jsonl", *trials)
    entries = sorted(p for p in cache_dir.iterdir() if not p.name.startswith("units-"))
    kept = {p: p.read_bytes() for p in entries}
    _corrupt(entries)
    assert _batch(tmp_path, "again.jsonl", *trials) == first
    assert {p: p.read_bytes() for p in entries} == kept  # each written again, whole


def test_an_entry_of_another_version_or_of_another_file_is_not_used(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    rules = ROOT / "rules" / "NCT03862768.yaml"
    checked: list = []
    _spy(monkeypatch, check, "_checked_trial", checked)
    trial = check.load_trial(rules)
    assert check.load_trial(rules) == trial and len(checked) == 1  # the second from the cache

    with monkeypatch.context() as other_version:
        other_version.setattr(screener, "__version__", "0.0.0-another")
        cache.environment.cache_clear()
        assert check.load_trial(rules) == trial and len(checked) == 2  # checked again, not read
    cache.environment.cache_clear()

    # the entry of one file put in the place of another's: it says whose it is
    other = tmp_path / "other.yaml"
    other.write_bytes(rules.read_bytes() + b"\n# another file\n")
    before = set(cache_dir.iterdir())
    theirs = check.load_trial(other)
    place, = set(cache_dir.iterdir()) - before
    ours = next(p for p in before if p.name.startswith("trial-") and str(rules).encode() in p.read_bytes())
    place.write_bytes(ours.read_bytes())
    assert check.load_trial(other) == theirs and theirs.path == str(other) and len(checked) == 4


@pytest.mark.parametrize("data", [
    {"object": ["os:system", []]},
    {"object": ["screener.__main__:main", []]},
    {"enum": ["builtins:int", 1]},
    {"object": ["screener.model:Span", ["a", 1]]},
    {"object": ["screener.run.batch:Screened", []]},
    {"fraction": ["1", 2]},
    {"tuple": {"json": 1}},
    {"set": []},
], ids=["not-ours", "not-loaded", "not-an-enum", "too-few-fields", "not-frozen", "not-a-fraction", "not-a-list", "no-such-tag"])
def test_the_cache_rebuilds_only_screener_data(data):
    with pytest.raises((serial.NotEncoded, TypeError, ValueError)):
        serial.decode(data)


def test_kept_unit_answers_of_a_wrong_kind_are_not_used():
    from decimal import Decimal

    from screener.rules.units import Conversion, _well_formed

    assert _well_formed(("conversion", "g/dL", "g/L"), Conversion(Decimal(10)))
    for question, answer in [(("conversion", "g/dL", "g/L"), 10), (("conversion", "g/dL", "g/L"), Conversion(Decimal(0))),
                             (("conversion", "g/dL", "g/L"), Conversion("10")), (("unit", "mg"), "refused"),
                             (("dimension", "g"), None), (("unit", 1), None), (("other", "g"), None), ("unit", None)]:
        assert not _well_formed(question, answer)
