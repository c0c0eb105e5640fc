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
