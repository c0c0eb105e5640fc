"""The audit traces of a dialog across its sessions: which traces a screening writes, how far
each has come at every save, and going on with them when it is resumed.

A session remembers its traces as `store.KeptTrace`s (path, letter path, record count, last
hash), noted at every save by `saver`. `continued_observer` opens them again for `screener
resume`, each checked against what the session remembers before anything is appended, and
`refusal` says in the dialog's language why a trace cannot go on.
"""
from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Callable

from screener.dialog import store
from screener.dialog.flow import Observer
from screener.dialog.several import Portfolio, SplitObserver
from screener.dialog.spec import DialogSpec
from screener.model import Trial

if TYPE_CHECKING:
    from screener.audit.artifacts import TraceObserver
    from screener.audit.sign import Signer
    from screener.audit.trace import TraceError


def continued_observer(session: store.Session, trial: Trial, portfolio: Portfolio | None,
                        operator: str | None, signer: "Signer | None" = None,
                        zone: "dt.tzinfo | None" = None) -> Observer:
    """Observers that go on with the traces a paused session remembers, each checked first and
    then given its `resume` record. Raises ContinuationRefused (nothing written) when any trace
    was changed, removed or sealed meanwhile."""
    from screener.audit.artifacts import ContinuationRefused, TraceObserver

    members = {member.id: member for member, _, _ in portfolio.members} if portfolio else {trial.id: trial}
    opened: dict[str, TraceObserver] = {}
    try:
        for kept in session.traces:
            member = members.get(kept.trial)
            if member is None:
                raise ContinuationRefused(kept.path, "rules", f"trial {kept.trial} is not screened here")
            opened[kept.trial] = TraceObserver.continuing(
                kept.path, member, records=kept.records, last_hash=kept.last_hash,
                letter_path=kept.letter, signer=signer, zone=zone)
    except BaseException:
        for done in opened.values():
            done.close()
        raise
    for continuing in opened.values():
        continuing.resume(operator)
    if portfolio is None:
        return opened[trial.id]
    return SplitObserver(portfolio, dict(opened))


def refusal(dialog: DialogSpec, error: TraceError, session: store.Session) -> str:
    """Why a paused screening's trace cannot go on (a ContinuationRefused), and what the
    person can do instead."""
    detail = error.message
    reasons = {
        "missing": dialog.tr("The trace {path} of this screening is gone.", path=error.path),
        "altered": dialog.tr("The trace {path} was changed after the screening stopped ({detail}).",
                             path=error.path, detail=detail),
        "sealed": dialog.tr("The trace {path} is sealed: nothing may be added to it.", path=error.path),
        "rules": dialog.tr("The trace {path} was started under other rules ({detail}).",
                           path=error.path, detail=detail),
        "letter": dialog.tr("The letter {path} exists already; letters are never overwritten.",
                            path=error.path),
        "busy": dialog.tr("The trace {path} is open in another screening that is still running.",
                          path=error.path),
    }
    reason = reasons.get(getattr(error, "problem", "")) or dialog.tr(
        "The trace {path} cannot be opened ({detail}).", path=error.path, detail=detail)
    return reason + " " + dialog.tr(
        "The screening was not continued; its answers stay saved. To go on in a new trace that "
        "records them again: screener resume {id} --trace NEW.trace.jsonl", id=str(session.path))


def links(session: store.Session | None, trial_id: str) -> tuple[dict[str, object], ...]:
    """The `continues` links of a new trace of `trial_id` for `session`: the trace of that
    trial the session wrote before, as far as it had come (nothing for a new screening)."""
    from screener.audit.links import link

    if session is None:
        return ()
    return tuple(link(kept.path, kept.records, kept.last_hash, kept.sealed)
                 for kept in session.traces if kept.trial == trial_id)


def pending_observer(session: store.Session, trial: Trial, portfolio: Portfolio | None,
                     dialog: DialogSpec, signer: "Signer | None" = None,
                     zone: "dt.tzinfo | None" = None) -> Observer:
    """New traces (and letters) for a pending screening taken up again, one per trace it
    wrote, named after each (`p1.trace.jsonl` -> `p1.2.trace.jsonl`), each linking the sealed
    one it continues and recording the screening's operator. Raises TraceError when a file
    cannot be created."""
    from screener.audit.artifacts import TraceObserver
    from screener.audit.links import link

    members = {member.id: (member, member_dialog) for member, _, member_dialog in portfolio.members} \
        if portfolio else {trial.id: (trial, dialog)}
    number = next_number([p for kept in session.traces for p in (kept.path, kept.letter) if p])
    opened: dict[str, TraceObserver] = {}
    try:
        for kept in session.traces:
            member, member_dialog = members[kept.trial]
            opened[kept.trial] = TraceObserver(
                numbered(kept.path, number), member, operator=session.operator,
                investigator=session.investigator,
                candidate_id=session.candidate_id,
                letter_path=numbered(kept.letter, number) if kept.letter else None,
                language=member_dialog.language, wording=member_dialog.wording(), zone=zone,
                signer=signer, continues=(link(kept.path, kept.records, kept.last_hash, kept.sealed),))
    except BaseException:
        for done in opened.values():
            done.close()
        raise
    if portfolio is None:
        return opened[trial.id]
    return SplitObserver(portfolio, dict(opened))


def numbered(path: str, number: int) -> str:
    """`path` with `number` after its first name part: `p1.NCT1.trace.jsonl`, 2 ->
    `p1.2.NCT1.trace.jsonl` (a number there already is replaced)."""
    folder, name = os.path.split(path)
    parts = name.split(".")
    if len(parts) > 2 and parts[1].isdigit():
        del parts[1]
    parts.insert(1, str(number))
    return os.path.join(folder, ".".join(parts))


def next_number(paths: list[str]) -> int:
    """The first number from 2 on for which no `numbered` sibling of `paths` exists yet."""
    number = 2
    while any(os.path.lexists(numbered(path, number)) for path in paths):
        number += 1
    return number


def kept_traces(observer: Observer | None, trial_id: str) -> tuple[store.KeptTrace, ...]:
    """How far each trace of `observer` has come, for the session to remember."""
    if observer is None:
        return ()
    from screener.audit.artifacts import TraceObserver

    if isinstance(observer, SplitObserver):
        members = list(observer.observers.items())
    else:
        members = [(trial_id, observer)]
    return tuple(
        store.KeptTrace(member, os.path.abspath(kept.trace_path),
                        os.path.abspath(kept.letter_path) if kept.letter_path else None,
                        kept.writer.seq, kept.writer.prev, kept.writer.sealed)
        for member, kept in members if isinstance(kept, TraceObserver))


def saver(observer: Observer | None, trial_id: str) -> Callable[[store.Session], None]:
    """`store.save`, noting first in the session how far its traces have come, so that
    `screener resume` can check that they were left alone meanwhile."""
    def save(session: store.Session) -> None:
        kept = kept_traces(observer, trial_id)
        if kept:
            session.traces = kept
        store.save(session)
    return save
