"""What a run of `batch` or `match` means for the screening log and the monitor: per trial, a
CONSORT-style attrition flow, the screening-log categories, and what is missing.

Built from result records alone (the JSON Lines or CSV that `batch` and `match` write), so
a report can be made later, elsewhere, from several files. Plain data; `report_html` and
`report_cli` present it.

The flow counts, for each criterion in protocol order: `failed`, the records that fail it
(an inclusion not met, an exclusion met); `failed_alone`, the records that fail it and no
other; `remaining`, the records not yet excluded by it or any criterion before it. Records
that could not be screened (`error`) are counted apart and enter no step, so the last
`remaining` is the number eligible plus pending.
"""
from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from screener.errors import ScreenerError
from screener.model import Trial
from screener.screening_log import CATEGORIES, category

CSV_COLUMNS = ("trial_id", "criterion", "title", "failed", "failed_alone", "remaining")
_LIST_KEYS = ("failed_criteria", "missing", "errors")


class UnreadableResults(ScreenerError):
    """A results file that is not the output of `batch` or `match`."""

    code = "unreadable-results"


@dataclass(frozen=True, slots=True)
class Step:
    """One criterion of the flow."""

    criterion: str
    title: str
    kind: str  # inclusion / exclusion
    failed: int
    failed_alone: int
    remaining: int


@dataclass(frozen=True, slots=True)
class MissingFact:
    """A fact that pending candidates lack, in a person's words."""

    fact: str
    label: str
    candidates: int


@dataclass(frozen=True, slots=True)
class ToCollect:
    """What to collect for one pending candidate of one trial, in clinical words."""

    candidate_id: str
    labels: tuple[str, ...]


@dataclass
class TrialReport:
    trial_id: str
    title: str
    screened: int
    errors: int
    categories: dict[str, int]  # every screening-log category, in CATEGORIES order
    steps: list[Step]
    missing: list[MissingFact]  # most often missing first
    worklist: list[ToCollect] = field(default_factory=list)  # pending candidates, input order

    @property
    def assessed(self) -> int:
        return self.screened - self.errors


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """The records of a `batch` or `match` results file (.jsonl or .csv); raises
    UnreadableResults naming the file and line when it is not one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise UnreadableResults(f"cannot read {path}: {reason}") from exc
    if path.suffix.lower() == ".csv":
        records = list(_csv_records(path, text))
    elif path.suffix.lower() == ".jsonl":
        records = list(_jsonl_records(path, text))
    else:
        raise UnreadableResults(f"{path}: results files end .jsonl or .csv")
    return records


def _jsonl_records(path: Path, text: str) -> Iterable[dict[str, Any]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise UnreadableResults(f"{path}:{number}: not a JSON object") from None
        yield _checked(path, number, record)


def _csv_records(path: Path, text: str) -> Iterable[dict[str, Any]]:
    reader = csv.DictReader(text.splitlines())
    for number, row in enumerate(reader, 2):
        record: dict[str, Any] = {k: _unsafe(v or "") for k, v in row.items() if k is not None}
        for key in _LIST_KEYS:
            if key in record:
                record[key] = [item for item in record[key].split(";") if item]
        yield _checked(path, number, record)


def _unsafe(cell: str) -> str:
    """A CSV cell as it was before `spreadsheet_safe` guarded it (a `'` before a formula start)."""
    if cell.startswith("'") and cell[1:2] in ("=", "+", "-", "@", "\t", "\r"):
        return cell[1:]
    return cell


def _checked(path: Path, number: int, record: Any) -> dict[str, Any]:
    if not isinstance(record, dict) or "decision" not in record or "candidate_id" not in record:
        raise UnreadableResults(f"{path}:{number}: not a result record of screener batch or match "
                                "(it needs candidate_id and decision)")
    for key in ("failed_criteria", "missing"):
        value = record.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UnreadableResults(f"{path}:{number}: {key} is not a list of names")
        record[key] = value
    return record


def by_trial(records: Iterable[dict[str, Any]], default_trial: str | None) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by `trial_id` (records without one belong to `default_trial`), in
    order of first appearance; raises UnreadableResults when a record's trial is not known."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        trial_id = record.get("trial_id") or default_trial
        if not trial_id:
            raise UnreadableResults("results of a single trial carry no trial_id: name it with --trial")
        groups.setdefault(str(trial_id), []).append(record)
    return groups


def trial_report(trial: Trial, records: Sequence[dict[str, Any]],
                 labels: Mapping[str, str] | None = None, with_ids: bool = False) -> TrialReport:
    """The report of one trial's records; `labels` gives facts their clinical labels (else the
    data dictionary's description is used); the per-candidate worklist only `with_ids`.
    Raises UnreadableResults when a record names a criterion the trial does not have."""
    known = {c.id for c in trial.criteria}
    for record in records:
        stray = [c for c in record["failed_criteria"] if c not in known]
        if stray:
            raise UnreadableResults(f"results for {trial.id} name criteria it does not have "
                                    f"({', '.join(stray)}): were they screened with other rules?")
    assessed = [r for r in records if r["decision"] != "error"]
    steps = []
    excluded: set[int] = set()
    for criterion in trial.criteria:
        failing = {i for i, r in enumerate(assessed) if criterion.id in r["failed_criteria"]}
        alone = sum(1 for i in failing if len(assessed[i]["failed_criteria"]) == 1)
        excluded |= failing
        steps.append(Step(criterion.id, criterion.title, criterion.kind, len(failing), alone,
                          len(assessed) - len(excluded)))
    counted = Counter(r.get("screening_log") or category(trial, r["decision"], r["failed_criteria"])
                      for r in records)
    pending = [r for r in records if r["decision"] == "undetermined"]
    missing = Counter(fact for r in pending for fact in dict.fromkeys(r["missing"]))
    label = _labeller(trial, labels or {})
    report = TrialReport(
        trial_id=trial.id, title=trial.title, screened=len(records), errors=len(records) - len(assessed),
        categories={c: counted.get(c, 0) for c in CATEGORIES}, steps=steps,
        missing=[MissingFact(fact, label(fact), count)
                 for fact, count in sorted(missing.items(), key=lambda fc: (-fc[1], _order(trial, fc[0])))],
    )
    if with_ids:
        report.worklist = [ToCollect(str(r["candidate_id"]), tuple(label(f) for f in r["missing"]))
                           for r in pending]
    return report


def _order(trial: Trial, fact: str) -> int:
    names = list(trial.facts)
    return names.index(fact) if fact in names else len(names)


def _labeller(trial: Trial, labels: Mapping[str, str]) -> Any:
    def label(fact: str) -> str:
        if labels.get(fact):
            return labels[fact]
        spec = trial.facts.get(fact)
        # the data dictionary's sentence up to its first ';' (what follows says when it applies)
        return spec.description.split(";")[0].strip().rstrip(".") if spec is not None else fact
    return label


def flow_csv_rows(reports: Sequence[TrialReport]) -> list[list[str]]:
    """The rows of the attrition CSV (CSV_COLUMNS), trial by trial, criteria in protocol order."""
    return [[r.trial_id, s.criterion, s.title, str(s.failed), str(s.failed_alone), str(s.remaining)]
            for r in reports for s in r.steps]
