"""Every fuzz target of fuzz/targets.py, run briefly: its seeds, then generated inputs.

The targets are the coverage-guided harnesses `make fuzz-each` runs with atheris; here each
runs its seeds and a few dozen inputs hypothesis makes (the same ones every time under CI),
so a reader that starts crashing, hanging or losing records fails the build. Records of a
trace and of a session file are changed field by field, then re-chained as a forger would,
so the checks behind the hash chain are reached, not only the chain itself.
Set SCREENER_FUZZ_EXAMPLES for a longer run.
"""
from __future__ import annotations

import copy
import json
import os
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT

sys.path.insert(0, str(ROOT / "fuzz"))
import targets  # noqa: E402  (fuzz/ is a folder of scripts, not a package)

EXAMPLES = int(os.environ.get("SCREENER_FUZZ_EXAMPLES", "30"))
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=bool(os.environ.get("CI")),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_every_target_has_seeds_and_takes_them(name):
    seeds = targets.seeds(name)
    assert seeds, f"fuzz/seeds/{name}/ is empty"
    for seed in seeds:
        targets.TARGETS[name](seed)


def _mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """`seed` with a few bytes replaced, inserted or cut: what a fuzzer tries first."""
    @st.composite
    def build(draw: Any) -> bytes:
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data)))
            how = draw(st.sampled_from(["replace", "insert", "cut"]))
            piece = draw(st.binary(min_size=1, max_size=8))
            if how == "replace":
                data[at:at + len(piece)] = piece
            elif how == "insert":
                data[at:at] = piece
            else:
                del data[at:at + len(piece)]
        return bytes(data)
    return build()


def _inputs(name: str) -> st.SearchStrategy[bytes]:
    seeds = targets.seeds(name)
    return st.one_of(st.binary(max_size=400), st.sampled_from(seeds).flatmap(_mutated))


@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("name", ["csv", "jsonl", "json", "yaml", "rules", "unit", "answer", "key", "trace"])
def test_bytes_a_reader_takes_are_used_or_refused_never_a_crash(name, data):
    targets.TARGETS[name](data.draw(_inputs(name), label="input"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8) | st.sampled_from(["2026-03-04T09:30:00+00:00", "met", "inclusion", "ecog", "dialog"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Every place inside a JSON value that a field could be changed or removed at."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*path, index))
    return found


@st.composite
def _changed(draw: Any, document: Any) -> Any:
    """`document` with one to three fields replaced by any JSON value, or removed."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return document


TRACES = [[json.loads(line) for line in seed.splitlines()] for seed in targets.seeds("trace-rechained")]


@FUZZ
@given(records=st.sampled_from(TRACES).flatmap(_changed))
def test_a_rechained_trace_with_any_field_changed_is_read_or_refused_never_a_crash(records):
    targets.trace(targets.rechain(records))


SESSION = json.loads(targets.seeds("session")[0])


@FUZZ
@given(document=_changed(SESSION))
def test_a_session_file_with_any_field_changed_is_loaded_or_refused_never_a_crash(document):
    targets.session(json.dumps(document).encode("utf-8"))


def test_a_deep_or_huge_input_is_refused_by_every_parser():
    huge = b"9" * 5000
    for name in ("jsonl", "json", "yaml", "rules", "trace", "trace-rechained", "session"):
        # YAML is scanned token by token in Python: a shallower text keeps this test quick
        depth = 20_000 if name in ("yaml", "rules") else 100_000
        targets.TARGETS[name](b"[" * depth + b"]" * depth)
        targets.TARGETS[name](huge)
    targets.unit(b"10*99999999999/L")
    targets.answer(b"\x00" + huge)


# --- what the targets found ---------------------------------------------------------------

def test_a_yaml_record_nested_100000_deep_took_hours_to_skip():
    # PyYAML's scanner looked at every open bracket at every token: quadratic in the depth,
    # minutes already at the 20,000 levels tried here
    import io

    from screener.sources.readers import open_text, read_rows
    from screener.rules.read import load_yaml_text
    from screener.errors import RulesError

    deep = "[" * 20_000 + "]" * 20_000
    rows = list(read_rows(open_text(io.BytesIO(f"- {deep}\n- {{candidate_id: B, ecog: 3}}\n".encode())), "yaml"))
    assert [(row.number, row.problem) for row in rows] == [
        (1, "record 1 (line 1): nested deeper than 64 levels"), (2, None)]
    assert rows[1].fields == {"candidate_id": "B", "ecog": 3}
    with pytest.raises(RulesError, match="rules.yaml:1:"):
        load_yaml_text(f"trial: {deep}\n", "rules.yaml")


def test_a_rechained_trace_with_a_4200_digit_value_is_explained_with_the_value_cut(tmp_path, capsys):
    from screener.cli import main

    records = copy.deepcopy(TRACES[0])
    fact = next(r for r in records if r.get("type") == "fact" and isinstance(r.get("value"), int)
                and not isinstance(r["value"], bool))
    fact["value"] = int("7" * 4200)
    trace = tmp_path / "forged.trace.jsonl"
    trace.write_bytes(targets.rechain(records))
    main(["explain", str(trace)])
    shown = capsys.readouterr().out
    assert "7" * 24 + "…" in shown and "7" * 25 not in shown  # the trace keeps all 4,200 digits
    assert "7" * 4200 in trace.read_text(encoding="utf-8")
