"""What the dialog shows, as rich renderables built from the trial, the result and the dialog file.

Nothing here prints; the flow hands these to its console. All wording comes from the
dialog file's messages and questions, all substance from the trial and the engine's Result.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from screener.dialog.answers import OWN_MESSAGES, InvalidAnswer
from screener.dialog.outcome import outcome
from screener.dialog.spec import DialogSpec
from screener.errors import ConflictError, ImpossibleFacts
from screener.i18n import Message
from screener.model import Result, Trial
from screener.present import computed, humanize, list_text, plain_value
from screener.rules.collect import describe_ref


def show_value(dialog: DialogSpec, value: Any, fact: str | None = None) -> str:
    """A fact value as the person reads it, in the dialog's language (`screener.present`):
    clinical labels for the values of `fact` where the dialog file gives them, numbers at a
    clinical precision with the fact's unit as clinicians write it, list items readable."""
    if value is None:
        return dialog.message("value_unknown")
    if isinstance(value, bool):
        return dialog.message("value_yes" if value else "value_no")
    question = dialog.questions.get(fact) if fact is not None else None
    if question is not None and isinstance(value, str) and value in question.values:
        return question.values[value]
    spec = dialog.facts.get(fact) if fact is not None else None
    if isinstance(value, (list, tuple)):
        units = {item.name: item.unit for item in spec.item} if spec is not None else {}
        fields = question.fields if question is not None else {}

        def field_value(name: str, raw: Any) -> str:
            if name in fields and isinstance(raw, str) and raw in fields[name].values:
                return fields[name].values[raw]
            if isinstance(raw, bool):
                return dialog.message("value_yes" if raw else "value_no")
            return plain_value(raw, dialog.language, unit=units.get(name, ""), date=dialog.local_date)

        return list_text(value, dialog.language, field_value=field_value,
                         field_label=lambda name: fields[name].label if name in fields and fields[name].label
                         else humanize(name))
    return plain_value(value, dialog.language, unit=spec.unit if spec is not None else "",
                       date=dialog.local_date)


def refusal(dialog: DialogSpec, error: InvalidAnswer) -> str:
    """The one-line reason for a refused answer, in the dialog's language: the dialog file's
    message, or the screener's own (list forms) from its catalogue."""
    params = {key: value.in_language(dialog.language) if isinstance(value, Message)
              else refusal(dialog, value) if isinstance(value, InvalidAnswer) else value  # a list item's own
              for key, value in error.params.items()}
    if error.key in OWN_MESSAGES:
        return dialog.tr(OWN_MESSAGES[error.key].id, **params)
    return dialog.message(error.key, **params)


def question(dialog: DialogSpec, fact: str, today: dt.date, progress: str | None = None,
             trial: str = "") -> Text:
    """The progress line, the question (after the trial it is asked for, when one of several)
    with its fact name dimmed in brackets, then the hint."""
    entry = dialog.questions[fact]
    hint = entry.hint
    if entry.default == "today":
        hint = f"{hint} {dialog.message('default_hint', value=today.isoformat())}"
    head = ("\n", (progress, "dim"), "\n") if progress else ("\n",)
    owner = ((dialog.tr("{trial}:", trial=trial), "bold cyan"), " ") if trial else ()
    return Text.assemble(*head, *owner, (entry.text, "bold"), " ", (f"[{fact}]", "dim"), "\n", (hint, "dim"))


def conflicts(dialog: DialogSpec, error: ConflictError) -> list[str]:
    """Answers that contradict each other, in the dialog's words, one line per contradiction
    the error carries (`ConflictError.each`): a given value that differs from the one derived
    from other answers, or inputs that cannot all be true."""
    return [_contradiction(dialog, each) for each in error.each]


def conflict(dialog: DialogSpec, error: ConflictError) -> str:
    """Every contradiction of `error` (see `conflicts`), one a line."""
    return "\n".join(conflicts(dialog, error))


def _contradiction(dialog: DialogSpec, error: ConflictError) -> str:
    if isinstance(error, ImpossibleFacts):
        return dialog.message("impossible", fact=dialog.label(error.fact),
                              inputs=", ".join(dialog.label(i) for i in error.inputs))
    derived, mark = computed(error.derived)
    return dialog.message("conflict", fact=dialog.label(error.fact),
                          given=show_value(dialog, error.given, error.fact),
                          derived=show_value(dialog, derived, error.fact) + mark)


def section(title: str) -> Text:
    """The heading shown when the questions move to a new part, e.g. organ function."""
    return Text.assemble("\n", (f"— {title} —", "bold"))


def confirmation(message: str, hint: str) -> Text:
    return Text.assemble((message, "bold yellow"), "\n", (hint, "dim"))


def problem(text: str) -> Text:
    return Text(text, style="red")


def note(text: str) -> Text:
    return Text(text, style="dim")


def why(dialog: DialogSpec, trial: Trial, fact: str | None) -> RenderableType:
    """Which criteria a question decides, with the protocol's words (and their translation
    where the dialog file gives one) and the reading notes in the dialog's language."""
    if fact is None:
        return Text(dialog.message("why_none"))
    parts: list[RenderableType] = [Text(dialog.message("why_title", fact=fact), style="bold")]
    for criterion in trial.criteria_using(fact):
        parts.append(Text.assemble((f"{criterion.id}", "bold"), f" {dialog.title(criterion)}"))
        parts.append(Text(f"  “{criterion.protocol.strip()}”", style="italic"))
        translation = dialog.protocol_translation(criterion)
        if translation:
            parts.append(Text(f"  {dialog.tr('translation: {text}', text=translation)}", style="italic"))
        note = dialog.note(criterion).strip()
        if note:
            parts.append(Text(f"  {note}", style="dim"))
    return Group(*parts)


def how(dialog: DialogSpec, trial: Trial, result: Result) -> RenderableType:
    """How the current conclusion was reached: derived facts, then each criterion's outcome with
    the rules that decided it, or the facts it still waits for."""
    decided = dialog.message(f"decision_{result.decision}")
    lines = [Text(dialog.message("how_title", decision=decided), style="bold")]
    seen: set[object] = set()
    for firing in result.firings:
        read = _read(dialog, trial, firing.facts)
        for fact, value in firing.derived.items():
            if fact not in trial.facts:  # a term the compiler made up: not the reader's business
                continue
            line = dialog.message("how_derived", fact=dialog.label(fact), value=show_value(dialog, value, fact),
                                  inputs=read)
            if line not in seen:
                seen.add(line)
                lines.append(Text(f"    {line}"))
    for criterion in trial.criteria:
        outcome = result.outcomes.get(criterion.id, "unknown")
        good = "met" if criterion.kind == "inclusion" else "not_met"
        style = "yellow" if outcome == "unknown" else ("green" if outcome == good else "red")
        lines.append(Text.assemble((f"{criterion.id:<4}", "bold"), " ", dialog.title(criterion), " → ",
                                   (dialog.message(f"outcome_{outcome}"), style)))
        if outcome == "unknown":
            waiting = [f for f in trial.expanded_facts(criterion) if f in result.missing]
            if waiting:
                labels = ", ".join(dialog.label(f) for f in waiting)
                lines.append(Text(f"    {dialog.message('how_waiting', facts=labels)}", style="dim"))
            continue
        for firing in result.firings:
            if firing.criterion != criterion.id or firing.outcome != outcome:
                continue
            read = _read(dialog, trial, firing.facts)
            if not read:  # decided by no fact (always met): nothing to show but the outcome
                continue
            line = dialog.message("how_rule", rule=criterion.id, facts=read)
            if (criterion.id, line) not in seen:
                seen.add((criterion.id, line))
                lines.append(Text(f"    {line}", style="dim"))
    return Group(*lines)


def _read(dialog: DialogSpec, trial: Trial, facts: dict[str, Any]) -> str:
    """Facts of the trial a rule read, as `label = value` in the dialog's language."""
    return ", ".join(f"{dialog.label(k)} = {show_value(dialog, v, k)}" for k, v in facts.items()
                     if k in trial.facts)


def summary(dialog: DialogSpec, answers: dict[str, Any], sources: dict[str, str],
            corrections: int) -> RenderableType:
    """The answers so far, in question order, with where each came from."""
    if not answers:
        return Text(dialog.message("summary_none"))
    table = Table(title=dialog.message("summary_title", count=len(answers), corrections=corrections),
                  show_header=False, box=None, pad_edge=False)
    table.add_column(no_wrap=True)
    table.add_column()
    table.add_column(style="dim")
    for fact in sorted(answers, key=lambda f: dialog.order(f) if f in dialog.questions else (0, 0, f)):
        source = sources.get(fact, "dialog")
        table.add_row(dialog.label(fact), show_value(dialog, answers[fact], fact), _source(dialog, source))
    return table


def help_text(dialog: DialogSpec, fact: str | None) -> RenderableType:
    """The current question's help paragraph, then the commands."""
    parts: list[RenderableType] = []
    if fact is not None:
        entry = dialog.questions[fact]
        parts += [Text(dialog.message("help_title", question=entry.text), style="bold"),
                  Text(entry.help), Text("")]
    parts.append(Text(dialog.message("help_commands")))
    return Group(*parts)


def decision(dialog: DialogSpec, trial: Trial, result: Result, answers: dict[str, Any],
             resume: str) -> RenderableType:
    """The decision screen: the decision in words and its screening-log category, each failed
    criterion with the values that decided it, and what is missing with the next step."""
    seen = outcome(trial, dialog, result, answers)
    facts = {**answers, **result.derived}
    text = dialog.message(f"decision_{result.decision}")
    lines: list[RenderableType] = [
        Text(dialog.message("decision", decision=result.decision, decision_text=text), style="bold"),
        Text(dialog.tr("Screening log: {category}", category=category_text(dialog, seen.category))),
    ]
    if seen.failures:
        lines.append(Text(dialog.message("failed", criteria=", ".join(result.failed))))
        for failure in seen.failures:
            titles = "; ".join(f"{cid} {dialog.title(trial.criterion(cid))}" for cid in failure.criteria)
            values = ", ".join(f"{dialog.label(f)}: {show_value(dialog, facts.get(f), f)}" for f in failure.facts)
            lines.append(Text.assemble("  ", (titles, "bold"), f" — {values}" if values else ""))
    if result.decision == "undetermined" and seen.missing:
        lines.append(Text(dialog.message("missing", facts=", ".join(
            describe_ref(f, dialog.label, dialog.tr) for f in seen.missing))))
        lines.append(Text(dialog.tr("Next step: find out what is missing, then continue with: {command}",
                                    command=resume), style="dim"))
    return Group(*lines)


def category_text(dialog: DialogSpec, category: str) -> str:
    """A screening-log category in the dialog's language."""
    words = {"eligible": dialog.tr("eligible"), "screen_failure": dialog.tr("screen failure"),
             "declined": dialog.tr("declined"), "pending": dialog.tr("pending")}
    return words[category]


def review(dialog: DialogSpec, answers: dict[str, Any], sources: dict[str, str]) -> RenderableType:
    """Every answer by section, with its clinical label and source, to check before finishing."""
    table = Table(title=dialog.tr("Review before finishing"), show_header=False, box=None,
                  pad_edge=False, title_justify="left")
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")  # a long value (a list) wraps; none is cut short
    table.add_column(style="dim")
    table.add_column(style="dim", no_wrap=True)
    section = None
    for fact in sorted((f for f in answers if f in dialog.questions), key=dialog.order):
        entry = dialog.questions[fact]
        if entry.section != section and entry.section:
            section = entry.section
            table.add_row(Text(dialog.section_title(section), style="bold"), "", "", "")
        table.add_row(f"  {dialog.label(fact)}", show_value(dialog, answers[fact], fact),
                      _source(dialog, sources.get(fact, "dialog")),
                      "" if sources.get(fact) == "context" else f"[{fact}]")  # what `change` takes
    return table


def from_record(dialog: DialogSpec, facts: list[str], answers: dict[str, Any],
                sources: dict[str, str]) -> RenderableType:
    """The values taken from the patient record, each with its resource and date, to confirm
    or correct (`change FACT`)."""
    table = Table(title=dialog.tr("From the patient record (to correct one: change FACT)"),
                  show_header=False, box=None, pad_edge=False, title_justify="left")
    table.add_column(no_wrap=True)
    table.add_column()
    table.add_column(style="dim")
    table.add_column(style="dim")
    for fact in sorted(facts, key=lambda f: dialog.order(f) if f in dialog.questions else (0, 0, f)):
        table.add_row(f"  {dialog.label(fact)}", show_value(dialog, answers.get(fact), fact),
                      _source(dialog, sources.get(fact, "")), fact)
    return table


def _source(dialog: DialogSpec, source: str) -> str:
    """Where an answer came from, in the dialog's words; a context fact shows `--context`."""
    if source.startswith("record|"):  # record|<resource>|<date>
        _, resource, date = (source.split("|") + ["", ""])[:3]
        text = dialog.tr("from the record, {resource}", resource=resource)
        return f"{text}, {date}" if date else text
    key = f"source_{source}"
    return dialog.message(key) if key in dialog.messages else f"--{source}"
