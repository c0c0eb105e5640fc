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
import re
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


def fits(trial: Trial, record: Mapping[str, Any]) -> bool:
    """True when `trial` could have given `record`: it has every criterion the record says
    failed and every fact it says is missing, and files the decision under the record's
    screening-log category."""
    criteria = {c.id for c in trial.criteria}
    if not set(record["failed_criteria"]) <= criteria:
        return False
    # a list to complete is named `lesions[2].short_axis` or `bp_readings[]`
    if any(re.split(r"[\[.]", name, maxsplit=1)[0] not in trial.facts for name in record["missing"]):
        return False
    logged = record.get("screening_log")
    return not logged or logged == category(trial, record["decision"], record["failed_criteria"])


def attribute(files: Sequence[tuple[str, list[dict[str, Any]]]], trials: Sequence[Trial],
              chosen: Sequence[str] = ()) -> dict[str, list[dict[str, Any]]]:
    """The records of `files` (name, records) grouped by trial, in order of first appearance,
    only the `chosen` trials' when some are. A record names its trial (`trial_id`, several
    trials screened at once) or comes from a single-trial run, whose file is then given the one
    trial among `trials` (the chosen ones, when some are) that could have given every record
    of it. Raises UnreadableResults naming the file when none or several could."""
    candidates = [t for t in trials if t.id in chosen] if chosen else list(trials)
    groups: dict[str, list[dict[str, Any]]] = {}
    for name, records in files:
        untagged = [r for r in records if not r.get("trial_id")]
        inferred = _trial_of(name, untagged, candidates) if untagged else ""
        for record in records:
            trial_id = str(record.get("trial_id") or inferred)
            if chosen and trial_id not in chosen:
                continue
            groups.setdefault(trial_id, []).append(record)
    missing = [t for t in chosen if t not in groups]
    if missing:
        raise UnreadableResults(f"no results for {', '.join(missing)} in {', '.join(n for n, _ in files)}")
    return groups


def _trial_of(name: str, records: Sequence[dict[str, Any]], trials: Sequence[Trial]) -> str:
    fitting = [t.id for t in trials if all(fits(t, r) for r in records)]
    if len(fitting) == 1:
        return fitting[0]
    among = ", ".join(t.id for t in trials)
    if not fitting:
        raise UnreadableResults(f"{name}: its results name no trial, and no trial found ({among}) has "
                                "every criterion and fact they name: were they screened with other rules?")
    raise UnreadableResults(f"{name}: its results name no trial, and could be those of "
                            f"{', '.join(fitting)}: name it with --trial")


@dataclass(frozen=True, slots=True)
class Overlap:
    """Candidates of one trial found in two results files with the same outcome: the batch and
    the match output of the same run, say. Counted once, from the first file."""

    trial_id: str
    first: str
    second: str
    candidates: int


def counted_once(files: Sequence[tuple[str, list[dict[str, Any]]]],
                 groups: Mapping[str, list[dict[str, Any]]]) -> tuple[dict[str, list[dict[str, Any]]], list[Overlap]]:
    """`groups` (from `attribute`) with each candidate of a trial counted once when several
    files hold it, and the overlaps found. A candidate id repeated within one file stays (an
    input may list a person twice). Raises UnreadableResults when two files hold the same
    candidate of a trial with different outcomes: the report cannot tell which is current."""
    source = {id(r): name for name, records in files for r in records}
    kept: dict[str, list[dict[str, Any]]] = {}
    overlaps: Counter[tuple[str, str, str]] = Counter()
    for trial_id, records in groups.items():
        seen: dict[str, tuple[str, dict[str, Any]]] = {}
        kept[trial_id] = []
        for record in records:
            key, name = str(record["candidate_id"]), source[id(record)]
            earlier = seen.get(key)
            if earlier is None or earlier[0] == name:
                seen.setdefault(key, (name, record))
                kept[trial_id].append(record)
                continue
            if _outcome(earlier[1]) != _outcome(record):
                raise UnreadableResults(
                    f"candidate {key} of {trial_id} is in both {earlier[0]} and {name} with different "
                    f"results ({record_words(earlier[1])}; {record_words(record)}): give the results "
                    "of one screening of each candidate")
            overlaps[(trial_id, earlier[0], name)] += 1
    return kept, [Overlap(t, a, b, n) for (t, a, b), n in overlaps.items()]


def _outcome(record: Mapping[str, Any]) -> tuple[Any, ...]:
    return (record["decision"], sorted(record["failed_criteria"]), sorted(record["missing"]))


def record_words(record: Mapping[str, Any]) -> str:
    """A record's outcome as a coordinator reads it: `ineligible, failing I5, E2`."""
    failed = record["failed_criteria"]
    return f"{record['decision']}, failing {', '.join(failed)}" if failed else str(record["decision"])


def trial_report(trial: Trial, records: Sequence[dict[str, Any]],
                 labels: Mapping[str, str] | None = None, with_ids: bool = False, *,
                 titles: Mapping[str, str] | None = None, trial_title: str = "") -> TrialReport:
    """The report of one trial's records; `labels` gives facts their clinical labels (else the
    data dictionary's description is used), `titles` criteria their titles and `trial_title`
    the trial its own in the report's language (else the rules' words); the per-candidate
    worklist only `with_ids`.
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
        title = (titles or {}).get(criterion.id) or criterion.title
        steps.append(Step(criterion.id, title, criterion.kind, len(failing), alone,
                          len(assessed) - len(excluded)))
    counted = Counter(r.get("screening_log") or category(trial, r["decision"], r["failed_criteria"])
                      for r in records)
    pending = [r for r in records if r["decision"] == "undetermined"]
    missing = Counter(fact for r in pending for fact in dict.fromkeys(r["missing"]))
    label = _labeller(trial, labels or {})
    report = TrialReport(
        trial_id=trial.id, title=trial_title or trial.title, screened=len(records), errors=len(records) - len(assessed),
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
