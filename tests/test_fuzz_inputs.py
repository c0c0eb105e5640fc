"""Fuzzing the batch readers and writer: whatever the bytes, one record per candidate, no crash.

Short runs here (a few seconds in CI); `make fuzz` runs the coverage-guided harness in
`fuzz/` for longer. Set SCREENER_FUZZ_EXAMPLES to run these with more examples.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screener.run.batch import Writer, screen_row
from screener.cli import main
from screener.sources.readers import UnreadableInput, open_text, read_rows

EXAMPLES = int(os.environ.get("SCREENER_FUZZ_EXAMPLES", "40"))
# a failing example's repr may be large; hypothesis warns, and warnings are errors here
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
# CI runs the same examples every time (a red build names a bug, not a dice roll); a longer,
# random search is `SCREENER_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz_inputs.py` or `make fuzz`
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=bool(os.environ.get("CI")),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
FORMATS = ["csv", "jsonl", "json", "yaml"]
FACTS = ["candidate_id", "ecog", "asa_class", "sex", "informed_consent", "birth_date", "notes"]

# Cells a careless export or a hostile hand writes: separators, quotes, line breaks, formulas,
# byte-order marks, control characters, surrogates' neighbours, long numbers.
cell_text = st.one_of(
    st.text(alphabet=st.sampled_from(list(',"\r\n\t =+-@;\'\\{}[]:#&*!|<>') + ["a", "Z", "0", "9", "é",
                                     "患", "\ufeff", "\x00", "\x1b", "\u2028", "\U0001f600"]),
            max_size=12),
    st.sampled_from(["", "3", "yes", "NO", "1990-02-30", "9999-12-31", "9" * 5000, "1e999", "nan",
                     "=HYPERLINK(\"x\")", "GHOST-1,0,1,male", "\"", "\"\"", "a\"b"]),
)


def _rows(data: bytes, fmt: str) -> list:
    return list(read_rows(open_text(io.BytesIO(data)), fmt))


def _screen_and_write(trial, screener, rows, fmt: str = "jsonl") -> str:
    out = io.StringIO()
    writer = Writer(out, fmt)
    for row in rows:
        writer.write(screen_row(trial, screener, row).record)
    text = out.getvalue()
    text.encode("utf-8")  # what the results file needs: no lone surrogate may reach it
    return text


def _assert_one_record_per_row(rows: list, text: str, fmt: str) -> None:
    assert [row.number for row in rows] == list(range(1, len(rows) + 1))
    if fmt == "jsonl":
        records = [json.loads(line) for line in text.split("\n")[:-1]]  # JSON keeps U+2028 raw
        assert len(records) == len(rows)
        for record in records:
            assert record["decision"] in ("eligible", "ineligible", "undetermined", "error")
    else:
        assert len(list(csv.reader(io.StringIO(text)))) == len(rows) + 1


@FUZZ
@given(data=st.binary(max_size=3000), fmt=st.sampled_from(FORMATS), out=st.sampled_from(["jsonl", "csv"]))
def test_random_bytes_give_rows_or_a_refusal_never_a_crash(trial, screener, data, fmt, out):
    try:
        rows = _rows(data, fmt)
    except UnreadableInput:
        return
    _assert_one_record_per_row(rows, _screen_and_write(trial, screener, rows, out), out)


@FUZZ
@given(table=st.lists(st.lists(cell_text, min_size=1, max_size=6), min_size=1, max_size=12),
       quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
       ending=st.sampled_from(["\n", "\r\n"]), bom=st.booleans(),
       encoding=st.sampled_from(["utf-8", "utf-8", "latin-1", "cp1252", "utf-16"]))
def test_csv_with_any_cells_and_quoting_gives_one_row_per_written_row(trial, screener, table, quoting,
                                                                      ending, bom, encoding):
    width = max(len(r) for r in table)
    header = FACTS[:width] + [f"extra{i}" for i in range(width - len(FACTS))]
    buffer = io.StringIO()
    if quoting == csv.QUOTE_MINIMAL:
        ending = "\r\n"  # with "\n", csv.writer leaves a bare "\r" in a cell unquoted
    writer = csv.writer(buffer, quoting=quoting, lineterminator=ending)
    writer.writerow(header)
    # a row of empty cells only is a blank line, which is no candidate: give every row an id
    table = [[f"id{i}", *r[1:]] + [""] * (width - len(r)) for i, r in enumerate(table)]
    writer.writerows(table)
    text = ("\ufeff" if bom else "") + buffer.getvalue()
    data = text.encode(encoding, errors="replace")
    try:
        rows = _rows(data, "csv")
    except UnreadableInput:
        assert encoding != "utf-8"
        return
    _assert_one_record_per_row(rows, _screen_and_write(trial, screener, rows), "jsonl")
    if encoding == "utf-8":
        assert len(rows) == len(table)
        for row, cells in zip(rows, table):
            if "\x00" not in "".join(cells):
                assert row.problem is None, row.problem
                assert [row.fields[name] for name in header] == cells


@FUZZ
@given(table=st.lists(st.lists(cell_text, min_size=2, max_size=4), min_size=2, max_size=10),
       broken=st.data())
def test_a_stray_byte_breaks_only_its_own_row_and_a_stray_quote_none_before_it(trial, screener, table, broken):
    table = [[f"id{i}", *r[1:4]] + [""] * (4 - len(r)) for i, r in enumerate(table)]
    lines = []
    for cells in table:
        buffer = io.StringIO()
        csv.writer(buffer).writerow(cells)  # "\r\n" endings: a cell's bare "\r" gets quoted
        lines.append(buffer.getvalue().encode("utf-8"))
    victim = broken.draw(st.integers(0, len(lines) - 1))
    damage = broken.draw(st.sampled_from([b'"', b'x,"', b"\xff", b"\xc3", b'"a"b,']))
    lines[victim] = lines[victim][:-2] + damage + b"\r\n"
    data = b"candidate_id,ecog,sex,notes\n" + b"".join(lines)
    rows = _rows(data, "csv")
    _assert_one_record_per_row(rows, _screen_and_write(trial, screener, rows), "jsonl")
    assert [row.fields.get("candidate_id") for row in rows[:victim]] == [f"id{i}" for i in range(victim)]
    assert rows[victim].problem is not None or b'"' in damage
    if b'"' not in damage:
        assert len(rows) == len(table)
        assert [row.fields.get("candidate_id") for row in rows[victim + 1:]] == [
            f"id{i}" for i in range(victim + 1, len(table))]
    # A stray quote is ambiguous: it may open a cell that a later line closes as valid CSV,
    # taking rows into that cell. The rows before it are never touched.


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | cell_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(FACTS), children, max_size=4),
    max_leaves=12,
)
raw_json = st.one_of(
    json_values.map(json.dumps),
    st.dictionaries(st.sampled_from(FACTS), json_values, max_size=5).map(json.dumps),
    st.integers(1, 200_000).map(lambda d: "[" * d + "]" * d),
    st.integers(1, 3000).map(lambda d: '{"candidate_id": "deep", "ecog": ' + "[" * d + "]" * d + "}"),
    st.sampled_from(['{"candidate_id": "a", "ecog": ' + "9" * 5000 + "}", '{"candidate_id": "\\ud800"}',
                     '{"candidate_id": "a", "candidate_id": "b"}', '{"ecog": NaN, "candidate_id": Infinity}',
                     "{oops", "[1, 2", '"text"', '{"a": 1 "b": 2}', "}{", "]"]),
)


@FUZZ
@given(items=st.lists(raw_json, max_size=8))
def test_jsonl_gives_one_row_per_line(trial, screener, items):
    lines = [item for item in items if item.strip()]
    rows = _rows(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"), "jsonl")
    assert len(rows) == len(lines)
    _assert_one_record_per_row(rows, _screen_and_write(trial, screener, rows), "jsonl")


@FUZZ
@given(items=st.lists(raw_json, max_size=8))
def test_a_json_list_gives_one_row_per_item_or_a_refusal(trial, screener, items):
    data = ("[" + ", ".join(items) + "]").encode("utf-8", "surrogatepass")
    # only items whose brackets do not close may lose the list's structure: then the list
    # is refused, or read as error rows whose count the broken brackets decide
    broken = any(item in ("{oops", "[1, 2", "}{", "]") for item in items)
    try:
        rows = _rows(data, "json")
    except UnreadableInput:
        assert broken
        return
    if not broken:
        assert len(rows) == len(items)
    _assert_one_record_per_row(rows, _screen_and_write(trial, screener, rows), "jsonl")


yaml_items = st.one_of(
    st.dictionaries(st.sampled_from(FACTS), json_values, max_size=5).map(
        lambda d: yaml.safe_dump([d], allow_unicode=True)),
    st.sampled_from([
        "- &a {candidate_id: a}\n", "- candidate_id: b\n  ecog: *x\n", "- {candidate_id: c, <<: {ecog: 1}}\n",
        "- candidate_id: d\n  ecog: 1\n  ecog: 2\n", "- " + "[" * 200 + "]" * 200 + "\n",
        "- candidate_id: e\n  ecog: " + "9" * 5000 + "\n", '- candidate_id: "\\ud800"\n',
        "- plain text\n", "- []\n",
    ]),
)


@FUZZ
@given(items=st.lists(yaml_items, max_size=6))
def test_a_yaml_list_gives_one_row_per_item(trial, screener, items):
    rows = _rows("".join(items).encode("utf-8"), "yaml")
    assert len(rows) == len(items)
    _assert_one_record_per_row(rows, _screen_and_write(trial, screener, rows), "jsonl")


@settings(FUZZ, max_examples=max(4, EXAMPLES // 6))
@given(data=st.binary(max_size=2000) | raw_json.map(lambda t: t.encode("utf-8", "surrogatepass")),
       fmt=st.sampled_from(FORMATS), out=st.sampled_from(["jsonl", "csv"]))
def test_the_command_exits_by_the_contract_whatever_the_file(trial, data, fmt, out, capsys):
    with tempfile.TemporaryDirectory() as folder:
        source, results = Path(folder) / f"in.{fmt}", Path(folder) / f"out.{out}"
        source.write_bytes(data)
        results.write_text("previous\n", encoding="utf-8")
        code = main(["batch", "--trial", trial.id, str(source), "-o", str(results)])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        try:
            rows = _rows(data, fmt)
        except UnreadableInput:
            assert code == 2
            assert results.read_text(encoding="utf-8") == "previous\n"
            return
        assert code in (0, 1) and (code == 1 or not any(row.problem for row in rows))
        _assert_one_record_per_row(rows, results.read_text(encoding="utf-8"), out)
