"""The adaptive screening loop: ask what the engine still needs, in the dialog's order, until decided.

After every answer all answers go to the engine; the next question is the first (by order hint)
of the facts in `Result.missing` not asked yet. Derived facts are asked through their inputs
unless an input is unknown. Input, console, clock, engine and the session store are injected,
so tests drive the loop with a pipe or a list of lines.
"""
from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable
from typing import Any, Mapping, Protocol

from rich.console import Console, RenderableType

from screener.dialog import interrupt, render
from screener.dialog.again import AskingAgain
from screener.dialog.answers import InvalidAnswer, command_of, parse_answer, typed_quantity
from screener.dialog.outcome import outcome
from screener.dialog.plausible import doubt
from screener.dialog.relevance import superseded
from screener.dialog.spec import DialogSpec, normalize
from screener.dialog.store import Session
from screener.dialog.terminal import Reader
from screener.errors import ConflictError, InvalidValue
from screener.model import FactValue, Interval, Result, Trial
from screener.present import plain_value
from screener.rules.collect import describe_ref, parse_ref
from screener.values import coerce


class Engine(Protocol):
    def evaluate(self, facts: dict[str, Any]) -> Result: ...


# The session's word for a value taken from a patient record: `record|<resource>|<date>`.
RECORD_SOURCE = "record|"


class Observer(Protocol):
    """Receives what happens in a screening, e.g. to write an audit trace.

    An observer may also have `pause(reason)`, called when the person stops before the
    decision (reason `quit`, `interrupt` for Ctrl-C, `eof` for Ctrl-D or the end of input),
    before the session is saved for `screener resume`.
    """

    def fact(self, name: str, value: FactValue | None, source: str) -> None: ...
    def correction(self, name: str, old: FactValue | None, new: FactValue | None, reason: str) -> None: ...
    def result(self, result: Result) -> None: ...


class _Stop(Exception):
    """The person asked to stop: `reason` is quit, interrupt (Ctrl-C) or eof (Ctrl-D, end of
    input)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _stop_for(error: BaseException) -> _Stop:
    return _Stop("interrupt" if isinstance(error, KeyboardInterrupt) else "eof")


class Dialog(AskingAgain):
    """One screening conversation over a Session; `run()` returns the latest Result.

    Creating it evaluates the session's answers, so it raises ConflictError when they disagree.
    """

    def __init__(
        self,
        trial: Trial,
        engine: Engine,
        dialog: DialogSpec,
        reader: Reader,
        console: Console,
        session: Session,
        *,
        save: Callable[[Session], None],
        observer: Observer | None = None,
        today: dt.date | None = None,
    ):
        self.trial = trial
        self.engine = engine
        self.dialog = dialog
        self.reader = reader
        self.console = console
        self.session = session
        self.save = save
        self.observer = observer
        self.today = today or dt.date.today()
        self._section = ""
        self._lists_asked: set[tuple[str, tuple[str, ...]]] = set()  # lists asked to be completed
        self._shown_left: int | None = None  # the last "at most N left" shown
        self._corrected: str | None = None  # the fact last corrected, since that count
        self._announced: set[str] = set()  # pending criteria whose earlier answers were shown
        self._again_settled = 0  # facts asked again and answered (kept or replaced) so far
        self.result = self._evaluate(session.answers)

    # --- the conversation -------------------------------------------------------------

    def run(self) -> Result:
        """Ask until the decision is settled (and the person is done); saves after every answer."""
        try:
            while True:
                again = self._next_again()
                if again is not None:
                    self._ask_again(again)
                    continue
                fact = self.next_fact()
                if fact is not None:
                    self._ask(fact)
                    continue
                if self._complete_a_list():
                    continue
                self.session.again.clear()
                self._finish()
                if not self._after_decision():
                    # Only the decision the person leaves with is reported, once, after any
                    # last corrections (a trace seals on it).
                    if self.observer is not None:
                        self.observer.result(self.result)
                        self.save(self.session)  # the session remembers the sealed trace
                    return self.result
        except _Stop as stop:
            self.session.status = "in_progress"
            pause = getattr(self.observer, "pause", None)
            if callable(pause):
                pause(stop.reason)
            self.save(self.session)
            self._say(render.note(self.dialog.message("quit_saved", path=str(self.session.path))))
            return self.result

    def next_fact(self) -> str | None:
        """The next fact to ask, or None when there is nothing that could still matter."""
        result = self.result
        # Once ineligible, Result.missing still lists what the undecided criteria need: asked
        # only for a complete screening log.
        if result.decision == "eligible" or (result.decision == "ineligible" and not self.session.complete):
            return None
        candidates = self._askable(result.missing)
        return min(candidates, key=self.dialog.order) if candidates else None

    def _complete_a_list(self) -> bool:
        """With nothing left to ask and the decision still open because of a list answered
        with an unknown item field, or empty where items are needed (docs/batch-io.md, "Lists
        to complete"), ask that list again, saying what to complete; each list once for the
        same entries, so an answer that completes nothing ends the questions. Returns whether
        a list was asked."""
        if self.result.decision != "undetermined":
            return False
        entries: dict[str, list[str]] = {}
        for name in self.result.missing:
            ref = parse_ref(name)
            if ref is not None and ref[0] in self.dialog.questions and ref[0] in self.session.answers:
                entries.setdefault(ref[0], []).append(name)
        for fact in sorted(entries, key=self.dialog.order):
            asked = (fact, tuple(entries[fact]))
            if asked in self._lists_asked:
                continue
            self._lists_asked.add(asked)
            what = "; ".join(describe_ref(name, self.dialog.label, self.dialog.tr) for name in entries[fact])
            self._say(render.note(self.dialog.tr("To decide, complete the list: {what}", what=what)))
            self._ask(fact, correction=self.dialog.tr("list completed"))
            return True
        return False

    def _askable(self, missing: tuple[str, ...]) -> list[str]:
        """The facts of `missing` that may be asked now: not answered, not computed from other
        answers, a derived fact through its inputs unless an input is unknown."""
        answers = self.session.answers
        candidates = [f for f in missing if f not in answers and f in self.dialog.questions]
        # a date an undecided criterion reads itself is asked even when the derivation it
        # also feeds cannot be computed (the screening date of a window, not only of a derivation)
        direct = {f for c in self.trial.criteria if self.result.outcomes.get(c.id, "unknown") == "unknown"
                  and self._criterion_open(c.id) for f in c.facts}
        read = set(self._still_read())
        # inputs another derivation still needs, all of whose inputs may yet be known: with
        # several trials, one trial's derived fact may wait on an unknown date while another
        # trial computes it from the same input
        needed = {i for d in self.trial.derivations
                  if (d.fact in missing or d.fact in read) and answers.get(d.fact) is None
                  and d.fact not in answers and not d.reported
                  and not any(i in answers and answers[i] is None for i in d.inputs)
                  for i in d.inputs}
        for derivation in self.trial.derivations:
            inputs = [i for i in derivation.inputs if i not in direct and i not in needed]
            # the derived fact matters to an open criterion (an input may be missing for
            # another reason, or for a trial already decided)
            relevant = derivation.fact in missing or derivation.fact in read
            if derivation.reported and derivation.fact in self.dialog.questions:
                # a reported measurement (a laboratory's eGFR, an ECG machine's QTcF) is asked
                # beside its inputs, whichever the dialog's order puts first; once it is given
                # its inputs are not asked, and when it is not known they are
                if derivation.fact in answers:
                    if answers[derivation.fact] is not None:
                        candidates = [f for f in candidates if f not in inputs]
                    continue
                if relevant and derivation.fact not in candidates:
                    candidates.append(derivation.fact)
                continue
            input_unknown = any(i in answers and answers[i] is None for i in derivation.inputs)
            # given as itself (not unknown), a derived fact needs no inputs; answered unknown
            # it still does, for a trial that derives it another way
            if answers.get(derivation.fact) is not None or input_unknown:
                candidates = [f for f in candidates if f not in inputs]
            if input_unknown and relevant and derivation.fact not in answers:
                if derivation.fact not in candidates:
                    candidates.append(derivation.fact)
            elif derivation.fact in candidates and any(i in candidates for i in derivation.inputs):
                candidates.remove(derivation.fact)
        # a fact already computed (by any trial of the screening) is never asked
        return [f for f in candidates if f not in self.result.derived]

    def _ask(self, fact: str, correction: str | None = None) -> bool:
        """Ask `fact` until it is answered or a command changes course.

        With a `correction` reason the answer replaces an earlier one (and back/change cancel
        it). Returns True when an answer was recorded.
        """
        if correction is not None and fact in self.session.answers:
            current = render.show_value(self.dialog, self.session.answers[fact], fact)
            self._say(render.note(self.dialog.message("correcting", fact=self.dialog.label(fact), value=current)))
        progress = None if correction is not None else self._progress(fact)
        while True:
            self._say(render.question(self.dialog, fact, self.today, progress, self.asked_for(fact)))
            line = self._read(fact)
            command = command_of(line, self.dialog.vocabulary)
            if command is None:
                reason = correction if fact in self.session.answers else None
                if self._take(fact, line, reason):
                    return True
            elif correction is not None and command[0] in ("back", "change"):
                self._say(render.note(self.dialog.message("cancelled")))
                return False
            elif self._command(*command, fact=fact):
                return False

    def _criterion_open(self, criterion: str) -> bool:
        """Whether questions may still come for `criterion` (its trial is not decided)."""
        return True

    def asked_for(self, fact: str) -> str:
        """The trial a question is asked for, when saying so helps ("" with one trial)."""
        return ""

    def _progress(self, fact: str) -> str:
        """`Question 7, at most 12 left`: this question's number in the screening and the most
        questions that can still come, this one included; a new section is announced first.

        The bound never goes up from one question to the next: it counts every fact an open
        criterion reads that could still be asked, a derived fact too while one of its inputs
        may turn out unknown. Only a correction can raise it (a question that no longer
        applied applies again); the screen then says so before the higher count."""
        section = self.dialog.questions[fact].section
        if section and section != self._section:
            self._say(render.section(self.dialog.section_title(section)))
        self._section = section
        number = 1 + self._again_settled + sum(1 for f in self.session.answers
                                               if not _prefilled(self.session.sources.get(f)))
        left = self._at_most_left()
        if self._shown_left is not None and left > self._shown_left and self._corrected:
            self._say(render.note(self.dialog.tr(
                "The correction of {fact} brings back questions that no longer applied: at most {left} left now.",
                fact=self.dialog.label(self._corrected), left=left)))
        self._shown_left, self._corrected = left, None
        return self.dialog.tr("Question {number}, at most {left} left", number=number, left=left)

    def _still_read(self) -> list[str]:
        """The facts the undecided criteria (of trials still open) read, derived facts with
        their inputs."""
        return [f for c in self.trial.criteria if self.result.outcomes.get(c.id, "unknown") == "unknown"
                and self._criterion_open(c.id) for f in self.trial.expanded_facts(c)]

    def _at_most_left(self) -> int:
        """The most questions that can still come, the one about to be asked included."""
        # Every fact an undecided criterion reads, not only those that would move it now: an
        # answer can make another question matter, and a bound that went up was never one.
        read = tuple(dict.fromkeys([*self.result.missing, *self._still_read()]))
        possible = set(self._askable(read)) | set(self.session.again)  # asked again: answered
        answers = self.session.answers
        for derivation in self.trial.derivations:
            # asked itself if an input turns out unknown: counted until every input is known
            if (derivation.fact in read and derivation.fact in self.dialog.questions
                    and derivation.fact not in answers and derivation.fact not in self.result.derived
                    and not all(answers.get(i) is not None for i in derivation.inputs)):
                possible.add(derivation.fact)
        return max(1, len(possible))

    def _after_decision(self) -> bool:
        """Offer a last chance to correct; True when a correction reopened the screening."""
        while True:
            self._say(render.note(self.dialog.message("finished_prompt")))
            try:
                line = self._read(None)
            except _Stop:
                return False
            if not line.strip():
                return False
            command = command_of(line, self.dialog.vocabulary)
            if command is None:
                self._say(render.problem(self.dialog.message("finished_hint")))
            elif command[0] == "quit":
                return False
            elif self._command(*command, fact=None):
                return True

    def _command(self, name: str, argument: str, fact: str | None) -> bool:
        """Run a command; True when it changed an answer (so the next question is recomputed)."""
        if name == "why":
            self._say(render.why(self.dialog, self.trial, fact))
        elif name == "how":
            self._say(render.how(self.dialog, self.trial, self.result))
        elif name == "summary":
            corrections = sum(1 for e in self.session.history if e["event"] == "correction")
            self._say(render.summary(self.dialog, self.session.answers, self.session.sources, corrections))
        elif name == "help":
            self._say(render.help_text(self.dialog, fact))
        elif name == "quit":
            raise _Stop("quit")
        elif name == "back":
            target = self.session.last_answered()
            if target is None:
                self._say(render.problem(self.dialog.message("nothing_to_correct")))
                return False
            return self._ask(target, self.dialog.message("source_correction"))
        elif name == "change":
            target, _, reason = argument.partition(" ")
            target = target.strip()
            if not target:
                self._say(render.problem(self.dialog.message("change_usage")))
                return False
            if target not in self.dialog.questions:
                self._say(render.problem(self._unknown_fact(target)))
                return False
            return self._ask(target, reason.strip() or self.dialog.message("source_correction"))
        return False

    # --- answers ----------------------------------------------------------------------

    def _take(self, fact: str, line: str, reason: str | None) -> bool:
        """Read `line` as the answer (or correction) for `fact`; False when it was refused."""
        try:
            answer = parse_answer(self.trial.facts[fact], self.dialog.questions[fact],
                                  self.dialog.vocabulary, line, self.today)
        except InvalidAnswer as exc:
            self._say(render.problem(self.explain(exc)))
            return False
        if answer.echo is not None:
            key, params = answer.echo
            self._say(render.note(self.dialog.message(key, **params)))
        elif isinstance(answer.value, Interval):
            # a range as the person will see it in the letter: `< 20 IU/mL`, `2021年3月`
            shown = plain_value(answer.value, self.dialog.language, unit=self.trial.facts[fact].unit)
            self._say(render.note(self.dialog.message("date_echo", date=shown)))
        value = answer.value
        doubts = doubt(self.dialog, self.trial.facts[fact], self.dialog.questions[fact], line,
                       value, self.today)
        if doubts:
            for question in doubts:
                if self._confirm(question.message):
                    value = question.value
                    break
            else:
                self._say(render.problem(self.dialog.tr("Not taken; please answer again.")))
                return False
        source = "default" if not line.strip() else "dialog"
        return self._record(fact, value, source, line, reason)

    def _confirm(self, message: str) -> bool:
        """Ask a yes/no confirmation; True only for a yes. `quit` stops here as at any prompt
        (the unconfirmed answer is not taken; resume asks its question again)."""
        self._say(render.confirmation(message, self.dialog.tr("yes / no")))
        words = self.dialog.vocabulary
        try:
            line = self.reader.read("> ", sorted(words.yes | words.no), [], lambda _line: None)
        except (EOFError, KeyboardInterrupt) as error:
            raise _stop_for(error) from None
        command = command_of(line, words)
        if command is not None and command[0] == "quit":
            raise _Stop("quit")
        return normalize(line) in words.yes

    def explain(self, error: InvalidAnswer) -> str:
        """The one-line reason for a refused answer, in the dialog's language."""
        return render.refusal(self.dialog, error)

    def check(self, fact: str | None, line: str) -> str | None:
        """The reason `line` cannot be taken at the prompt of `fact`, or None (for validation)."""
        if fact is None or command_of(line, self.dialog.vocabulary) is not None:
            return None
        if not line.strip() and fact in self.session.again:  # keeps the earlier answer
            return None
        try:
            parse_answer(self.trial.facts[fact], self.dialog.questions[fact],
                         self.dialog.vocabulary, line, self.today)
        except InvalidAnswer as exc:
            return self.explain(exc)
        return None

    def _record(self, fact: str, value: FactValue | None, source: str, raw: str | None,
                reason: str | None) -> bool:
        trial_answers = dict(self.session.answers)
        trial_answers[fact] = value
        try:
            result = self._evaluate(trial_answers)
        except ConflictError as exc:  # ImpossibleFacts too
            self._say(render.problem(render.conflict(self.dialog, exc)))
            return False
        if reason is not None:
            before = dict(self.session.answers)
            old = self.session.correct(fact, value, reason, raw)
            self._say(render.note(self.dialog.message(
                "corrected", fact=self.dialog.label(fact), old=render.show_value(self.dialog, old, fact),
                new=render.show_value(self.dialog, value, fact))))
            if self.observer is not None:
                self.observer.correction(fact, old, value, reason)
            self._corrected = fact
            result = self._drop_superseded(before, fact, value)
        else:
            self.session.answer(fact, value, source, raw)
            if self.observer is not None:
                given = typed_quantity(self.trial.facts[fact], raw)
                self.observer.fact(fact, value, source if given is None else
                                   {"kind": "dialog", "question": fact, "given": given})
        self.session.status = "in_progress"
        self._echo_derived(result)
        self.result = result
        self.save(self.session)
        return True

    def _echo_derived(self, result: Result) -> None:
        """Show values computed from the answers (derived facts) as they become known."""
        for name, value in result.derived.items():
            if self.result.derived.get(name) != value:
                self._say(render.note(self.dialog.tr(
                    "{fact} = {value} (calculated)", fact=self.dialog.label(name),
                    value=render.show_value(self.dialog, value, name))))

    def _drop_superseded(self, before: dict[str, FactValue | None], fact: str,
                         value: FactValue | None) -> Result:
        """Take back the answers the correction of `fact` made irrelevant; the Result of the
        answers that stay."""
        order = sorted(self.session.answers, key=lambda f: self.dialog.order(f) if f in self.dialog.questions else (0, 0, f))
        dropped = superseded(self._evaluate, before, dict(self.session.answers), fact, order)
        if not dropped:
            # evaluated again even so: the probes left the engine on other answers (a
            # Portfolio keeps each trial's last result, which its traces record)
            return self._evaluate(self.session.answers)
        label = self.dialog.label(fact)
        shown = render.show_value(self.dialog, value, fact)
        for name in dropped:
            reason = self.dialog.tr("no longer applies once {fact} is {value}", fact=label, value=shown)
            old = self.session.supersede(name, reason)
            self._say(render.note(self.dialog.tr(
                "{fact} ({value}) no longer applies once {changed} is {new}: removed from the record.",
                fact=self.dialog.label(name), value=render.show_value(self.dialog, old, name),
                changed=label, new=shown)))
            if self.observer is not None:
                self.observer.correction(name, old, None, reason)
        return self._evaluate(self.session.answers)

    def prefill(self, given: dict[str, Any], sources: Mapping[str, tuple[str, Any]] | None = None) -> list[str]:
        """Take answers from an answers file (or a patient record) before asking; returns
        problems (empty when all fit).

        Text values are read like typed answers (synonyms, units, written dates); other values
        go through the engine's coercion. Nothing is recorded unless every value fits.
        `sources` gives, per fact, the session's word for its source and the trace's source
        (a patient record's resource); by default both say "answers file".
        """
        problems: list[str] = []
        values: dict[str, tuple[FactValue | None, str]] = {}
        for fact, raw in given.items():
            if fact not in self.dialog.questions:
                problems.append(self._unknown_fact(fact))
                continue
            try:
                if isinstance(raw, str):
                    value = parse_answer(self.trial.facts[fact], self.dialog.questions[fact],
                                         self.dialog.vocabulary, raw, self.today).value
                else:
                    value = coerce(self.trial.facts[fact], raw)
                values[fact] = (value, str(raw))
            except InvalidAnswer as exc:
                problems.append(f"{fact}: {self.explain(exc)}")
            except InvalidValue as exc:
                problems.append(f"{fact}: {self._refusal_of(fact, raw, exc)}")
        if problems:
            return problems
        merged = {**self.session.answers, **{f: v for f, (v, _) in values.items()}}
        try:
            self.result = self._evaluate(merged)
        except ConflictError as exc:
            return render.conflicts(self.dialog, exc)
        for fact, (value, raw) in values.items():
            said, traced = (sources or {}).get(fact, ("answers", "answers"))
            self.session.answer(fact, value, said, raw)
            if self.observer is not None:
                self.observer.fact(fact, value, traced)
        self.save(self.session)
        from_file = [f for f in values if f not in (sources or {})]  # a record's are shown apart
        if from_file:
            self._say(render.note(self.dialog.message("prefilled", count=len(from_file))))
        return []

    def _refusal_of(self, fact: str, raw: Any, error: InvalidValue) -> str:
        """Why a pre-filled value (a number, a date) does not fit, in the dialog's language:
        the reason a typed answer of the same text would get, else the engine's own."""
        try:
            parse_answer(self.trial.facts[fact], self.dialog.questions[fact],
                         self.dialog.vocabulary, str(raw), self.today)
        except InvalidAnswer as refused:
            return self.explain(refused)
        return error.reason

    # --- plumbing ---------------------------------------------------------------------

    def _unknown_fact(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self.dialog.questions), n=1)
        hint = self.dialog.message("did_you_mean", fact=close[0]) if close else ""
        return self.dialog.message("unknown_fact", fact=name, suggestion=hint)

    def _finish(self) -> None:
        self.session.status = "finished"
        self.session.decision = self.result.decision
        self.session.category = outcome(self.trial, self.dialog, self.result, self.session.answers).category
        self.save(self.session)
        self._say(render.review(self.dialog, self.session.answers, self.session.sources))
        self._say(render.decision(self.dialog, self.trial, self.result, self.session.answers,
                                  f"screener resume {self.session.path.stem}"))

    def _read(self, fact: str | None) -> str:
        words = list(self.dialog.vocabulary.commands)
        if fact is not None:
            entry = self.dialog.questions[fact]
            spec = self.trial.facts[fact]
            words = list(spec.values) + list(entry.synonyms) + words
            if spec.type == "boolean":
                words = sorted(self.dialog.vocabulary.yes | self.dialog.vocabulary.no) + words
        try:
            return self.reader.read("> ", list(dict.fromkeys(words)), sorted(self.session.answers),
                                    lambda line: self.check(fact, line))
        except (EOFError, KeyboardInterrupt) as error:
            raise _stop_for(error) from None

    def _evaluate(self, answers: dict[str, FactValue | None]) -> Result:
        interrupt.evaluating(len(answers))
        return self.engine.evaluate({k: v for k, v in answers.items() if v is not None})

    def _say(self, renderable: RenderableType) -> None:
        self.console.print(renderable)


def _prefilled(source: Any) -> bool:
    """Whether an answer came before the questions: an answers file or a patient record."""
    return source == "answers" or str(source).startswith(RECORD_SOURCE)
