"""One conversation for several trials: a shared fact is asked once, decided trials ask nothing.

`Portfolio` joins the trials into one Trial and one DialogSpec the dialog loop understands:
the facts of every trial (a fact two trials share must be defined alike, and is asked once),
their derivations, and their criteria with ids prefixed by the trial (`<trial> <criterion>`), so `why`
names the criteria of every trial a question serves. As the dialog's engine it evaluates
each trial on its own facts and reports as missing only what still-open trials need.
`PortfolioDialog` asks first the fact that the most still-open trials need (then the dialog
files' order) and ends with one row per trial: decision, failed criteria, what is missing.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from typing import Any, Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from screener.dialog.flow import Dialog, Engine, Observer
from screener.dialog.spec import DialogSpec
from screener.errors import ScreenerError
from screener.model import FactValue, Result, Trial

SEPARATOR = "+"  # between trial ids in the joined trial's id, e.g. in a session file


def criterion_id(trial_id: str, criterion: str) -> str:
    return f"{trial_id} {criterion}"


class Portfolio:
    """Several trials as one for the dialog; also the dialog's engine (`evaluate`)."""

    def __init__(self, members: Sequence[tuple[Trial, Engine, DialogSpec]]):
        if len(members) < 2:
            raise ScreenerError("a portfolio needs at least two trials")
        self.members = list(members)
        self.trial = _joined_trial([t for t, _, _ in members])
        self.dialog = _joined_dialog([(t, d) for t, _, d in members], self.trial.id)
        self.results: dict[str, Result] = {}
        self._open: Counter[str] = Counter()

    def evaluate(self, facts: dict[str, Any]) -> Result:
        """Evaluate every trial on its own facts; a trial decided needs nothing more.

        The joined decision is `undetermined` while any trial is; then `eligible` if some
        trial is eligible, else `ineligible`. Raises what a trial's engine raises."""
        results = {trial.id: engine.evaluate({k: v for k, v in facts.items() if k in trial.facts})
                   for trial, engine, _ in self.members}
        open_trials = [t for t, _, _ in self.members if results[t.id].decision == "undetermined"]
        needed: Counter[str] = Counter(f for t in open_trials for f in results[t.id].missing)
        self.results, self._open = results, needed
        if open_trials:
            decision = "undetermined"
        else:
            decision = "eligible" if any(r.decision == "eligible" for r in results.values()) else "ineligible"
        outcomes, failed, derived, firings = {}, [], {}, []
        for trial, _, _ in self.members:
            result = results[trial.id]
            outcomes.update({criterion_id(trial.id, c): o for c, o in result.outcomes.items()})
            failed += [criterion_id(trial.id, c) for c in result.failed]
            derived.update(result.derived)
            firings += [dataclasses.replace(f, criterion=criterion_id(trial.id, f.criterion))
                        if f.criterion else f for f in result.firings]
        missing = tuple(sorted(needed, key=lambda f: (-needed[f], self.dialog.order(f)
                                                      if f in self.dialog.questions else (0, f))))
        return Result(decision, outcomes, tuple(failed), missing, derived, tuple(firings))

    def serving(self, fact: str) -> int:
        """How many still-open trials need `fact` (after the last evaluation)."""
        return self._open.get(fact, 0)


def _joined_trial(trials: Sequence[Trial]) -> Trial:
    facts: dict[str, Any] = {}
    derivations: dict[str, Any] = {}
    for trial in trials:
        for name, spec in trial.facts.items():
            # one answer serves every trial, so a shared fact must take the same answers
            other = facts.setdefault(name, spec)
            if (other.type, other.values) != (spec.type, spec.values):
                raise ScreenerError(f"trials define fact {name!r} differently ({other.span} and {spec.span}); "
                                    "screen them in separate dialogs")
        for derivation in trial.derivations:
            # how a trial derives a fact is its own business: each derivation is kept
            key = derivation.id if derivations.get(derivation.id, derivation) == derivation \
                else f"{trial.id} {derivation.id}"
            derivations[key] = derivation
    criteria = tuple(dataclasses.replace(c, id=criterion_id(t.id, c.id)) for t in trials for c in t.criteria)
    first = trials[0]
    return Trial(
        id=SEPARATOR.join(t.id for t in trials), title="; ".join(t.title for t in trials),
        version=SEPARATOR.join(t.version for t in trials), path=first.path,
        content_hash=hashlib.sha256("".join(t.content_hash for t in trials).encode()).hexdigest(),
        facts=facts, derivations=tuple(derivations.values()), criteria=criteria, id_fact=first.id_fact,
    )


def _joined_dialog(members: Sequence[tuple[Trial, DialogSpec]], joined_id: str) -> DialogSpec:
    """The first trial's wording and commands; each fact's question from the first trial
    that asks it; criterion titles, protocol translations and notes of every trial under their
    prefixed ids."""
    first = members[0][1]
    questions: dict[str, Any] = {}
    titles: dict[str, str] = {}
    translations: dict[str, str] = {}
    notes: dict[str, str] = {}
    for trial, dialog in members:
        for fact, question in dialog.questions.items():
            questions.setdefault(fact, question)
        for criterion in trial.criteria:
            joined = criterion_id(trial.id, criterion.id)
            titles[joined] = dialog.title(criterion)
            notes[joined] = dialog.note(criterion)
            if dialog.protocol_translation(criterion):
                translations[joined] = dialog.protocol_translation(criterion)
    facts: dict[str, Any] = {}
    for _, dialog in members:
        for name, spec in dialog.facts.items():
            facts.setdefault(name, spec)
    disease = tuple(criterion_id(trial.id, c) for trial, dialog in members for c in dialog.disease)
    return dataclasses.replace(first, trial_id=joined_id, questions=questions, titles=titles,
                               protocol_translations=translations, notes=notes, facts=facts,
                               disease=disease)


class PortfolioDialog(Dialog):
    """The dialog loop over a Portfolio: most-needed question first, a row per trial at the end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # trials the answers so far (a resumed session's) decided: not announced again
        self._closed = {t.id for t, _, _ in self.portfolio.members
                        if self.portfolio.results.get(t.id) is not None
                        and self.portfolio.results[t.id].decision != "undetermined"}

    @property
    def portfolio(self) -> Portfolio:
        assert isinstance(self.engine, Portfolio)
        return self.engine

    def next_fact(self) -> str | None:
        """Each open trial's disease questions first, trial by trial (a trial without the
        disease closes before anything else is asked for it); then the fact that the most
        open trials need, in the dialog files' order."""
        if self.result.decision != "undetermined":
            return None
        candidates = self._askable(self.result.missing)
        if not candidates:
            return None
        disease = self._disease_facts()
        return min(candidates, key=lambda f: (disease.get(f, len(self.portfolio.members)),
                                              -self.portfolio.serving(f), self.dialog.order(f)))

    def _disease_facts(self) -> dict[str, int]:
        """The facts read by the disease criteria (the dialog files' `disease`) still unknown in
        an open trial, each with the place of the first such trial in the screening."""
        facts: dict[str, int] = {}
        for place, (trial, _, dialog) in enumerate(self.portfolio.members):
            result = self.portfolio.results.get(trial.id)
            if result is None or result.decision != "undetermined":
                continue
            for criterion in dialog.disease:
                if result.outcomes.get(criterion, "unknown") == "unknown":
                    for fact in trial.expanded_facts(trial.criterion(criterion)):
                        facts.setdefault(fact, place)
        return facts

    def _still_read(self) -> list[str]:
        """Each open trial's facts read by its undecided criteria, a derived fact expanded by
        that trial's own derivation (two trials may derive one fact from different dates)."""
        needed: list[str] = []
        for trial, _, _ in self.portfolio.members:
            result = self.portfolio.results.get(trial.id)
            if result is not None and result.decision != "undetermined":
                continue
            for criterion in trial.criteria:
                if result is None or result.outcomes.get(criterion.id, "unknown") == "unknown":
                    needed += trial.expanded_facts(criterion)
        return needed

    def _criterion_open(self, criterion: str) -> bool:
        trial_id = criterion.split(" ", 1)[0]
        result = self.portfolio.results.get(trial_id)
        return result is None or result.decision == "undetermined"

    def asked_for(self, fact: str) -> str:
        """The one trial a question serves, named before it: two trials may ask alike what
        means different things (the consent of one, the master consent of the other)."""
        owners = [trial.id for trial, _, _ in self.portfolio.members if fact in trial.facts]
        return owners[0] if len(owners) == 1 else ""

    def _echo_derived(self, result: Result) -> None:
        """Besides the computed values: each trial this answer decided, and that its questions
        stop (the conversation goes on for the others)."""
        super()._echo_derived(result)
        for trial, _, _ in self.portfolio.members:
            now = self.portfolio.results.get(trial.id)
            if now is None or now.decision == "undetermined" or trial.id in self._closed:
                continue
            self._closed.add(trial.id)
            if result.decision != "undetermined":
                continue  # the last trial to close: the decision screen follows
            failed = "; ".join(f"{c} {self.dialog.title(trial.criterion(c))}" for c in now.failed)
            decided = self.dialog.message(f"decision_{now.decision}")
            self._say(Text(self.dialog.tr("{trial} is decided: {decision}{failed}; it needs no more answers.",
                                          trial=trial.id, decision=decided,
                                          failed=f" ({failed})" if failed else ""), style="bold"))

    def _finish(self) -> None:
        self.session.status = "finished"
        self.session.decision = self.result.decision
        self.save(self.session)
        self._say(per_trial_table(self.dialog, self.portfolio))


def per_trial_table(dialog: DialogSpec, portfolio: Portfolio) -> RenderableType:
    """Each trial's decision, failed criteria (with titles) and missing facts."""
    table = Table(show_lines=False, title_justify="left")
    for column in (dialog.tr("trial"), dialog.tr("decision"), dialog.tr("failed criteria"), dialog.tr("missing")):
        table.add_column(column, overflow="fold")
    lines: list[RenderableType] = []
    for trial, _, _ in portfolio.members:
        result = portfolio.results[trial.id]
        failed = "; ".join(f"{c} {dialog.title(trial.criterion(c))}" for c in result.failed) or "-"
        missing = (", ".join(dialog.label(f) for f in result.missing)
                   if result.decision == "undetermined" else "-")
        table.add_row(trial.id, dialog.message(f"decision_{result.decision}"), failed, missing or "-")
        lines.append(Text(f"{trial.id}: " + dialog.message("decision", decision=result.decision,
                                                          decision_text=dialog.message(f"decision_{result.decision}"))))
    return Group(table, *lines)


class SplitObserver:
    """Hands each trial's own observer the facts of that trial and, at the end, its own result."""

    def __init__(self, portfolio: Portfolio, observers: dict[str, Observer]):
        self.portfolio = portfolio
        self.observers = observers

    def _for(self, fact: str) -> list[Observer]:
        return [o for t, o in self._members() if fact in t.facts]

    def _members(self) -> list[tuple[Trial, Observer]]:
        return [(t, self.observers[t.id]) for t, _, _ in self.portfolio.members if t.id in self.observers]

    def fact(self, name: str, value: FactValue | None, source: str, **when: Any) -> None:
        for observer in self._for(name):
            observer.fact(name, value, source, **when)

    def correction(self, name: str, old: FactValue | None, new: FactValue | None, reason: str,
                   **when: Any) -> None:
        for observer in self._for(name):
            observer.correction(name, old, new, reason, **when)

    def resume(self, operator: str | None = None, reason: str | None = None) -> None:
        """The screening goes on (or is reopened for `reason`): every trial's trace says so."""
        for observer in self.observers.values():
            resume = getattr(observer, "resume", None)
            if callable(resume):
                resume(operator, reason)

    def result(self, result: Result) -> None:
        for trial, observer in self._members():
            observer.result(self.portfolio.results[trial.id])

    def pause(self, reason: str) -> None:
        """The conversation stopped before its decision: every trial's observer hears why."""
        for observer in self.observers.values():
            pause = getattr(observer, "pause", None)
            if callable(pause):
                pause(reason)

    def close(self) -> None:
        for observer in self.observers.values():
            close = getattr(observer, "close", None)
            if callable(close):
                close()
