"""Asking again what a pending screening still needs, although it was answered.

A criterion written with `pending(f, ...)` (docs/rules-language.md, "Pending") stays unknown
while the evidence given does not count (an eye examination too early, or without dilation):
its facts are missing whether or not they are answered. When such a screening is taken up
again (`screener resume`), those answered facts are asked first, each question showing the
earlier answer, which Enter keeps; a new answer replaces it as a correction, with its time and
a reason naming the criterion, so the trace records what was collected since.

`AskingAgain` is the part of the dialog loop (`screener.dialog.flow.Dialog`) that does it; the
facts still to ask again live in the session (`Session.again`), so a screening paused in the
middle goes on with the rest.
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from rich.console import RenderableType

from screener.dialog import render
from screener.dialog.answers import InvalidAnswer, command_of, parse_answer
from screener.dialog.spec import DialogSpec
from screener.dialog.store import Session
from screener.model import Criterion, FactValue, Result, Trial, pending_facts


class AskingAgain:
    """Asking again, first, the answered facts a pending criterion names (a Dialog mixin)."""

    trial: Trial
    dialog: DialogSpec
    session: Session
    result: Result
    today: dt.date
    _announced: set[str]  # pending criteria whose earlier answers were shown
    _again_settled: int  # facts asked again and answered (kept or replaced) so far

    if TYPE_CHECKING:  # the dialog loop's own
        def _say(self, renderable: RenderableType) -> None: ...
        def _read(self, fact: str | None) -> str: ...
        def _progress(self, fact: str) -> str: ...
        def _take(self, fact: str, line: str, reason: str | None) -> bool: ...
        def _command(self, name: str, argument: str, fact: str | None) -> bool: ...
        def _criterion_open(self, criterion: str) -> bool: ...
        def asked_for(self, fact: str) -> str: ...
        def save(self, session: Session) -> None: ...

    def ask_pending_again(self) -> list[str]:
        """For a pending screening taken up again: the answered facts that its pending
        criteria (`pending(...)` in their conditions) name as missing are asked first, again,
        each with its earlier answer (Session.ask_again). Returns them."""
        named = [f for c in self.trial.criteria
                 if self.result.outcomes.get(c.id, "unknown") == "unknown" and self._criterion_open(c.id)
                 for f in pending_facts(c.condition)
                 if f in self.result.missing and f in self.dialog.questions]
        self.session.ask_again(named)
        return list(self.session.again)

    def _next_again(self) -> str | None:
        """The next fact to ask again (Session.ask_again), in the dialog's order. They are all
        asked, whatever a new answer to one of them concluded meanwhile, so that a new
        examination's date is never read with the earlier one's method or finding; none once
        the candidate is ineligible (unless the screening log is to be complete)."""
        if self.result.decision == "ineligible" and not self.session.complete:
            return None
        again = [f for f in self.session.again if f in self.session.answers and f in self.dialog.questions]
        return min(again, key=self.dialog.order) if again else None

    def _pending_criteria(self, fact: str) -> list[Criterion]:
        """The criteria whose `pending(...)` names `fact`."""
        return [c for c in self.trial.criteria if fact in pending_facts(c.condition)]

    def _ask_again(self, fact: str) -> bool:
        """Ask `fact` again although it is answered: the question shows the earlier answer,
        which Enter (or the same answer) keeps; a new answer replaces it as a correction whose
        reason names the pending criterion. Returns True when an answer was kept or recorded."""
        criteria = self._pending_criteria(fact)
        self._announce_pending(criteria)
        earlier = self.session.answers[fact]
        shown = render.show_value(self.dialog, earlier, fact)
        titles = "; ".join(self.dialog.title(c) for c in criteria)
        reason = self.dialog.tr("collected again: {criterion} was pending", criterion=titles)
        progress = self._progress(fact)
        while True:
            self._say(render.question(self.dialog, fact, self.today, progress, self.asked_for(fact),
                                      earlier=shown))
            line = self._read(fact)
            if not line.strip() or self._same_answer(fact, line, earlier):
                self.session.keep(fact)
                self._say(render.note(self.dialog.tr("{fact}: the earlier answer stands ({value}).",
                                                     fact=self.dialog.label(fact), value=shown)))
                self.save(self.session)
                self._again_settled += 1
                return True
            command = command_of(line, self.dialog.vocabulary)
            if command is None:
                if self._take(fact, line, reason):
                    self._again_settled += 1
                    return True
            elif self._command(*command, fact=fact):
                return False

    def _announce_pending(self, criteria: list[Criterion]) -> None:
        """Before the first of its facts is asked again, what a pending criterion was given:
        those answers do not settle it."""
        for criterion in criteria:
            if criterion.id in self._announced:
                continue
            self._announced.add(criterion.id)
            given = [f for f in pending_facts(criterion.condition) if f in self.session.again]
            if not given:
                continue
            separator = "；" if self.dialog.language == "zh" else "; "
            earlier = separator.join(self.dialog.tr(
                "{fact}: {value}", fact=self.dialog.label(f),
                value=render.show_value(self.dialog, self.session.answers[f], f)) for f in given)
            self._say(render.note(self.dialog.tr(
                "Still pending: {criterion}. Earlier: {answers} — these answers do not settle it. "
                "Its questions come again: Enter keeps an earlier answer, a new answer replaces it.",
                criterion=self.dialog.title(criterion), answers=earlier)))

    def _same_answer(self, fact: str, line: str, earlier: FactValue | None) -> bool:
        """Whether `line` reads as the answer `fact` already has."""
        if command_of(line, self.dialog.vocabulary) is not None:
            return False
        try:
            answer = parse_answer(self.trial.facts[fact], self.dialog.questions[fact],
                                  self.dialog.vocabulary, line, self.today)
        except InvalidAnswer:
            return False
        return answer.value is not None and answer.value == earlier
