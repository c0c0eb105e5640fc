"""Several trials at once: each candidate screened for every chosen trial, and ranked.

`screen_portfolio` yields, per input row, one batch record per trial in the order the trials
were chosen, each with the `trial_id` key right after `candidate_id` (the "Several trials"
addition of docs/batch-io.md). `rank` orders one candidate's records the way a coordinator
acts on them. With one trial, `screener batch` does not come here: its output stays exactly
the single-trial contract. Nothing here prints; `cli` owns the terminal.
"""
from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from screener.run.batch import (
    AuditOptions, SharedReads, Summary, chunk_results, chunks, screen_row, unknown_to_all, write_audit,
)
from screener.engine import Screener
from screener.model import Trial
from screener.paths import inside
from screener.prospects import MATCH_FIELDS, prospect_fields, rank_key
from screener.sources.readers import Row

if TYPE_CHECKING:
    from screener.run.store import Store

PORTFOLIO_COLUMNS = ("candidate_id", "trial_id", "decision", "failed_criteria", "missing", "errors", "warnings",
                     "screening_log")
MATCH_COLUMNS = ("candidate_id", "rank", "trial_id", "decision", "failed_criteria", "missing", "errors",
                 "warnings", "screening_log", *MATCH_FIELDS)


def with_trial(record: dict[str, Any], trial_id: str) -> dict[str, Any]:
    """The record with `trial_id` placed right after `candidate_id`."""
    out = {"candidate_id": record["candidate_id"], "trial_id": trial_id}
    out.update(record)  # candidate_id keeps its place, first
    return out


def trial_audit(audit: AuditOptions | None, trial_id: str) -> AuditOptions | None:
    """Traces and letters of a trial go to a folder of their own, named by the trial id:
    a candidate has one trace per trial, and file names come from the candidate id."""
    if audit is None:
        return None
    # the trial id was checked when its rules were read; `inside` proves it once more
    traces = os.fspath(inside(audit.traces_dir, trial_id))
    letters = os.fspath(inside(audit.letters_dir, trial_id)) if audit.letters_dir else None
    for directory in filter(None, (traces, letters)):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    return dataclasses.replace(audit, traces_dir=traces, letters_dir=letters)


def _screen_one_row(trials: Sequence[Trial], screeners: Sequence[Screener], row: Row,
                    audits: Sequence[AuditOptions | None], shared: SharedReads,
                    store: Store | None = None, match: bool = False,
                    ) -> list[tuple[dict[str, Any], str | None]]:
    out = []
    shared.next_row()  # a fact several trials declare alike is read once
    for trial, screener, audit in zip(trials, screeners, audits):
        # a match record also needs the criteria's outcomes (`prospect_fields`), which a stored
        # record does not keep: match screens every candidate again, whatever the store holds
        screened = screen_row(trial, screener, row, store=None if match else store, shared=shared)
        warning = write_audit(trial, row, screened, audit) if audit is not None else None
        if warning:
            warning = f"{trial.id}: {warning}"
        record = with_trial(screened.record, trial.id)
        if match:  # how much is known, for `rank`
            record.update(prospect_fields(trial, record["decision"], screened.result))
        out.append((record, warning))
    return out


class Tally:
    """A summary per trial, and the run's own summary (all records, warnings, unknown fields)."""

    def __init__(self, trials: Sequence[Trial], overall: Summary):
        self.overall = overall
        self.per_trial = {t.id: Summary() for t in trials}

    def add(self, record: dict[str, Any], warning: str | None) -> None:
        self.overall.add(record)
        self.per_trial[record["trial_id"]].add(record)
        if warning:
            self.overall.warnings.append(warning)
            self.overall.unwritten += record["decision"] != "error"  # errors get no trace anyway


def screen_portfolio(trials: Sequence[Trial], rows: Iterable[Row], tally: Tally,
                     audit: AuditOptions | None = None, store: Store | None = None,
                     match: bool = False) -> Iterator[dict[str, Any]]:
    """Screen every row for every trial in this process; yields records, input order then
    trial order (`match`: with the fields `rank` reads; reusing the `store`'s records of
    unchanged candidates and trials when there is one). One durable-rules session is live at
    a time, whatever the number of trials."""
    trials = tuple(trials)  # one tuple for every row: `unknown_to_all` knows it again at once
    screeners = [Screener(t, firings=audit is not None) for t in trials]  # firings: for traces
    audits = [trial_audit(audit, t.id) for t in trials]
    shared = SharedReads(trials)
    for row in rows:
        tally.overall.unknown_fields.update(unknown_to_all(trials, row))
        for record, warning in _screen_one_row(trials, screeners, row, audits, shared, store, match=match):
            tally.add(record, warning)
            yield record


# --- several processes -------------------------------------------------------------------

_worker: tuple[tuple[Trial, ...], list[Screener], list[AuditOptions | None], bool, SharedReads] | None = None


def _init_worker(rules_paths: list[str], audit: AuditOptions | None, match: bool = False) -> None:
    global _worker
    from screener.rules.check import load_trial

    trials = tuple(load_trial(p) for p in rules_paths)
    _worker = (trials, [Screener(t, firings=audit is not None) for t in trials],
               [trial_audit(audit, t.id) for t in trials], match, SharedReads(trials))


def _screen_chunk(rows: list[Row]) -> list[tuple[list[tuple[dict[str, Any], str | None]], list[str]]]:
    assert _worker is not None
    trials, screeners, audits, match, shared = _worker
    return [(_screen_one_row(trials, screeners, row, audits, shared, match=match), unknown_to_all(trials, row))
            for row in rows]


def screen_portfolio_parallel(trials: Sequence[Trial], rules_paths: Sequence[str], rows: Iterable[Row],
                              tally: Tally, jobs: int, audit: AuditOptions | None = None,
                              chunk_size: int = 128, match: bool = False) -> Iterator[dict[str, Any]]:
    """As `screen_portfolio`, in `jobs` worker processes; records keep their order and at
    most a few chunks per worker are in flight, so memory stays flat."""
    for chunk in chunk_results(rows, jobs, chunk_size, _init_worker, (list(rules_paths), audit, match),
                               _screen_chunk):
        for screened, unknown in chunk:
            tally.overall.unknown_fields.update(unknown)
            for record, warning in screened:
                tally.add(record, warning)
                yield record


# --- matching: which trials could this candidate enter? -----------------------------------

def rank(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One candidate's match records, best prospect first (`screener.prospects.rank_key`):
    eligible; pending, the largest share of criteria settled first, then fewest missing
    answers; ineligible, fewest failed criteria first; not assessed; errors. Ties keep the
    trial order. Each record gains its 1-based `rank` after `candidate_id`."""
    ordered = sorted(enumerate(records), key=lambda ir: (rank_key(ir[1]), ir[0]))
    out = []
    for position, (_, record) in enumerate(ordered, 1):
        ranked = {"candidate_id": record["candidate_id"], "rank": position}
        ranked.update((k, v) for k, v in record.items() if k != "candidate_id")
        out.append(ranked)
    return out


def per_candidate(records: Iterable[dict[str, Any]], trial_count: int) -> Iterator[list[dict[str, Any]]]:
    """Group the portfolio's record stream into one list per input row (`trial_count` each)."""
    return chunks(records, trial_count)
