"""Dialog files: the questions, help texts, synonyms and UI wording of one trial in one language.

A dialog file is data (`dialogs/<trial>.<lang>.yaml`); this module reads it with source
positions, checks it against the trial's data dictionary and returns a frozen `DialogSpec`.
Every fact of the trial must have a question and every question must name a fact; problems
are collected and raised together as `RulesError` with `file:line:col`.
"""
from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from screener.rules.parse import suggest
from screener.checks import Checker
from screener.errors import RulesError
from screener.i18n import local_date, translate
from screener.rules.read import PosDict, PosList, load_yaml
from screener.model import Criterion, FactSpec, Span, Trial
from screener.present import label_from

# The message keys the dialog code formats; each dialog file must give all of them.
REQUIRED_MESSAGES = (
    "title", "intro", "candidate_question", "candidate_hint", "prefilled", "resumed",
    "default_hint", "date_echo", "unit_echo", "correcting", "corrected",
    "nothing_to_correct", "unknown_fact", "conflict", "impossible", "quit_saved", "decision",
    "decision_eligible", "decision_ineligible", "decision_undetermined", "failed", "missing", "finished_prompt", "finished_hint",
    "why_title", "why_none", "how_title", "how_rule", "how_derived", "how_waiting", "summary_title",
    "summary_none", "help_title", "help_commands", "outcome_met", "outcome_not_met",
    "outcome_unknown", "value_yes", "value_no", "value_unknown", "source_dialog",
    "source_answers", "source_default", "source_correction", "bad_yes_no", "bad_number",
    "bad_integer", "bad_unit", "bad_date", "ambiguous_date", "bad_choice", "out_of_range",
    "below_minimum", "above_maximum", "empty", "cancelled", "rules_changed", "change_usage", "did_you_mean",
)
COMMANDS = ("why", "how", "back", "change", "summary", "help", "quit")
DEFAULTS = ("today",)

_TOP = {"dialog": True, "messages": True, "answers": True, "commands": True, "facts": True,
        "criteria": False, "sections": False, "disease": False}
_HEAD = {"trial": True, "language": True, "title": False}
_ANSWERS = {"yes": True, "no": True, "unknown": True, "today": True, "months": True}
_QUESTION = {
    "order": True, "question": True, "help": True, "hint": True, "synonyms": False,
    "units": False, "roman": False, "default": False, "label": False, "values": False,
    "section": False, "plausible": False, "refusal": False, "fields": False, "modifiers": False,
}
_FIELD = {"label": False, "names": False, "values": False, "synonyms": False}
_PLAUSIBLE_NUMBER = {"min": False, "max": False}
_PLAUSIBLE_DATE = {"years_before": False, "days_after": False}
_UNIT = {"unit": True, "factor": True, "names": True}
_CRITERION = {"title": True, "protocol_translation": False, "note": False}


def is_number(value: Any) -> bool:
    """True for a number or text that reads as one (booleans are not numbers)."""
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def normalize(text: str) -> str:
    """The form answers and synonyms are compared in: NFKC, case-folded, inner spaces single."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit an answer may be given in, and the factor to the fact's own unit."""

    label: str
    factor: float
    names: tuple[str, ...]  # normalized, spaces removed


@dataclass(frozen=True, slots=True)
class Plausible:
    """The usual range of an answer; outside it the dialog asks for a confirmation.

    Numbers: `low`..`high` in the fact's own unit. Dates: from `years_before` years before
    today to `days_after` days after it. None where the file sets no bound.
    """

    low: float | None = None
    high: float | None = None
    years_before: int | None = None
    days_after: int | None = None


@dataclass(frozen=True, slots=True)
class Section:
    """A part of the conversation, e.g. "organ function and labs"; asked in file order."""

    id: str
    title: str


@dataclass(frozen=True, slots=True)
class ItemField:
    """How a field of a list fact's items is named and answered in this language, e.g. the
    regimen of a prior treatment: `方案=含吉西他滨方案`."""

    name: str
    label: str = ""  # "" = the field's name in words
    names: tuple[str, ...] = ()  # normalized words that name the field when typed
    values: dict[str, str] = field(default_factory=dict)  # enum value -> its label
    synonyms: dict[str, str] = field(default_factory=dict)  # normalized word -> enum value


@dataclass(frozen=True, slots=True)
class Question:
    """How to ask for one fact and read the answer."""

    fact: str
    order: int
    text: str
    help: str
    hint: str
    synonyms: dict[str, Any]  # normalized synonym -> canonical answer (an enum value, a bool...)
    units: tuple[Unit, ...]  # the first is the fact's own unit
    roman: bool
    default: str | None  # one of DEFAULTS
    span: Span
    label: str = ""  # the clinical label, e.g. "NYHA class" ("" = the fact name)
    values: dict[str, str] = field(default_factory=dict)  # enum value -> clinical label
    section: str = ""  # id of its Section ("" = after every section)
    plausible: Plausible | None = None
    refusal: bool = False  # a "no" is the patient declining (counted apart in screening logs)
    fields: dict[str, ItemField] = field(default_factory=dict)  # list facts: their items' fields
    # whole-number facts: letters written after the value that do not change it (ASA's E,
    # an emergency operation: "ASA II E" is class II)
    modifiers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Words every answer understands, whatever the question (normalized)."""

    yes: frozenset[str]
    no: frozenset[str]
    unknown: frozenset[str]
    today: frozenset[str]
    months: dict[str, int]
    commands: dict[str, str]  # normalized alias -> command


@dataclass(frozen=True, slots=True)
class DialogSpec:
    """One trial's dialog in one language."""

    trial_id: str
    language: str
    path: str
    messages: dict[str, str]
    vocabulary: Vocabulary
    questions: dict[str, Question]
    titles: dict[str, str]  # criterion id -> title in this language (else the rules' title)
    sections: tuple[Section, ...] = ()
    # criterion id -> the protocol text in this language, shown beside the verbatim text
    protocol_translations: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # criterion id -> note in this language
    trial_title: str = ""  # the trial's title in this language ("" = the registered one)
    facts: dict[str, FactSpec] = field(default_factory=dict)  # the trial's data dictionary
    # ids of the criteria that say whether the candidate has the trial's disease: screening
    # several trials, their questions come before any other (docs/dialogs.md, `disease`)
    disease: tuple[str, ...] = ()

    def title(self, criterion: Criterion) -> str:
        """The criterion's title in this language."""
        return self.titles.get(criterion.id, criterion.title)

    def protocol_translation(self, criterion: Criterion) -> str:
        """The protocol text of `criterion` translated into this language ("" when the file
        gives none: the verbatim text then stands alone)."""
        return self.protocol_translations.get(criterion.id, "")

    def note(self, criterion: Criterion) -> str:
        """The interpretation note of `criterion` in this language (else the rules' note)."""
        return self.notes.get(criterion.id, criterion.note)

    def wording(self) -> dict[str, Any]:
        """This language's trial wording as plain JSON data, for the start of a trace: criterion
        titles, protocol translations and notes, clinical labels of facts and of their values.
        Letters and explanations rendered later from the trace alone speak it."""
        return {
            "language": self.language, "dialog_file": Path(self.path).name,
            "trial_title": self.trial_title,
            "titles": dict(sorted(self.titles.items())),
            "protocol_translations": dict(sorted(self.protocol_translations.items())),
            "notes": dict(sorted(self.notes.items())),
            "labels": {f: self.label(f) for f in sorted(self.questions)},
            "values": {f: dict(q.values) for f, q in sorted(self.questions.items()) if q.values},
            "fields": {f: {n: i.label for n, i in q.fields.items() if i.label}
                       for f, q in sorted(self.questions.items()) if q.fields},
            "field_values": {f: {n: dict(i.values) for n, i in q.fields.items() if i.values}
                             for f, q in sorted(self.questions.items()) if q.fields},
            # a list fact's fields in the rules' order (a trace stores an item's keys sorted)
            "field_order": {f: [i.name for i in spec.item] for f, spec in sorted(self.facts.items())
                            if spec.item and f in self.questions},
        }

    def message(self, key: str, **params: Any) -> str:
        """The message `key` of this language with `params` filled in."""
        return self.messages[key].format(**params)

    def tr(self, message: str, **params: Any) -> str:
        """A message of the screener itself (an English message id) in this language."""
        return translate(self.language, message, **params)

    def local_date(self, day: Any) -> str:
        """A date as written in this language (`13 March 1970`, `1970年3月13日`)."""
        return local_date(self.language, day)

    def order(self, fact: str) -> tuple[int, int, str]:
        """Sort key of a fact: its section, its order hint, then its name."""
        question = self.questions[fact]
        ranks = [section.id for section in self.sections]
        rank = ranks.index(question.section) if question.section in ranks else len(ranks)
        return (rank, question.order, fact)

    def label(self, fact: str) -> str:
        """The clinical label of a fact in this language; without one in the file, a label
        made from the data dictionary (`screener.present.label_from`), never the bare name."""
        question = self.questions.get(fact)
        if question is not None and question.label:
            return question.label
        spec = self.facts.get(fact)
        return label_from(fact, spec.description if spec is not None and self.language == "en" else "")

    def value_label(self, fact: str, value: str) -> str:
        """The clinical label of an enum value in this language (the value itself when none)."""
        question = self.questions.get(fact)
        return question.values.get(value, value) if question is not None else value

    def section_title(self, section_id: str) -> str:
        return next((s.title for s in self.sections if s.id == section_id), section_id)


class _Check(Checker):
    def mapping(self, value: Any, span: Span, what: str,  # type: ignore[override]
                keys: dict[str, bool] | None) -> PosDict:
        """Like Checker.mapping, but an empty mapping stands in for a wrong value."""
        checked = super().mapping(value, span, what, keys)
        if checked is None:
            checked = PosDict()
            checked.span, checked.key_spans, checked.value_spans = span, {}, {}
        return checked

    def words(self, mapping: PosDict, key: str, what: str) -> list[str]:
        value = mapping.get(key)
        span = mapping.value_spans.get(key, mapping.span)
        items = value if isinstance(value, PosList) else [value]
        if not isinstance(value, PosList) and not isinstance(value, str):
            if key in mapping:
                self.add(span, "wrong-type", f"{what}.{key} must be a list of words")
            return []
        out = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)) or not str(item).strip():
                self.add(span, "wrong-type", f"{what}.{key}: {item!r} is not a word")
                continue
            out.append(normalize(str(item)))
        return out


def load_dialog(path: str | Path, trial: Trial, display: str | None = None) -> DialogSpec:
    """Read and check a dialog file against `trial`.

    Returns the DialogSpec; raises RulesError listing every problem with `file:line:col`.
    """
    shown = display or str(path)
    document = load_yaml(path, shown)
    check = _Check(shown)
    top = check.mapping(document, Span(shown, 1, 1), "the dialog file", _TOP)
    head = check.mapping(top.get("dialog"), top.key_spans.get("dialog", top.span), "dialog", _HEAD)
    trial_id = check.text(head, "trial", "dialog")
    if trial_id and trial_id != trial.id:
        check.add(head.value_spans["trial"], "wrong-trial",
                  f"dialog is for {trial_id!r} but the rules are for {trial.id!r}")
    messages = _messages(check, top)
    vocabulary = _vocabulary(check, top)
    questions = _questions(check, top, trial, vocabulary)
    titles, translations, notes = _criteria(check, top, trial)
    sections = _sections(check, top, questions)
    disease = _disease(check, top, trial)
    if check.problems:
        raise RulesError(check.problems)
    return DialogSpec(trial_id, check.text(head, "language", "dialog"), shown, messages,
                      vocabulary, questions, titles, sections, translations, notes,
                      check.text(head, "title", "dialog") if "title" in head else "", dict(trial.facts),
                      disease)


def _disease(check: _Check, top: PosDict, trial: Trial) -> tuple[str, ...]:
    """The criteria naming the trial's disease (`disease: [<criterion id>, ...]`), each a criterion of the trial."""
    if "disease" not in top:
        return ()
    raw, span = top["disease"], top.value_spans["disease"]
    if not isinstance(raw, PosList) or not all(isinstance(item, str) for item in raw):
        check.add(span, "wrong-type", "disease must be a list of criterion ids")
        return ()
    known = [c.id for c in trial.criteria]
    for item, item_span in zip(raw, raw.item_spans):
        if item not in known:
            check.add(item_span, "unknown-criterion",
                      f"disease: {item!r} is not a criterion of {trial.id}{suggest(item, known)}")
    return tuple(item for item in raw if item in known)


def _sections(check: _Check, top: PosDict, questions: dict[str, Question]) -> tuple[Section, ...]:
    if "sections" not in top:
        return ()
    raw = check.mapping(top["sections"], top.value_spans["sections"], "sections", None)
    sections = tuple(Section(str(key), check.text(raw, key, "sections")) for key in raw)
    known = [section.id for section in sections]
    for question in questions.values():
        if question.section and question.section not in known:
            check.add(question.span, "unknown-section",
                      f"facts.{question.fact}.section: {question.section!r} is not listed under "
                      f"sections{suggest(question.section, known)}")
    return sections


def _criteria(check: _Check, top: PosDict,
              trial: Trial) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Each criterion's title, protocol translation and note in this language. An entry is
    the title alone, or a mapping with `title` and optionally `protocol_translation`, `note`."""
    titles: dict[str, str] = {}
    translations: dict[str, str] = {}
    notes: dict[str, str] = {}
    if "criteria" not in top:
        return titles, translations, notes
    raw = check.mapping(top["criteria"], top.value_spans["criteria"], "criteria", None)
    known = [c.id for c in trial.criteria]
    for criterion_id in raw:
        what = f"criteria.{criterion_id}"
        if criterion_id not in known:
            check.add(raw.key_spans[criterion_id], "unknown-criterion",
                      f"{criterion_id!r} is not a criterion of {trial.id}{suggest(criterion_id, known)}")
        if not isinstance(raw[criterion_id], PosDict):
            titles[criterion_id] = check.text(raw, criterion_id, "criteria")
            continue
        entry = check.mapping(raw[criterion_id], raw.value_spans[criterion_id], what, _CRITERION)
        titles[criterion_id] = check.text(entry, "title", what)
        if "protocol_translation" in entry:
            translations[criterion_id] = check.text(entry, "protocol_translation", what).strip()
        if "note" in entry:
            notes[criterion_id] = check.text(entry, "note", what).strip()
    return titles, translations, notes


def _messages(check: _Check, top: PosDict) -> dict[str, str]:
    raw = check.mapping(top.get("messages"), top.key_spans.get("messages", top.span), "messages", None)
    out: dict[str, str] = {}
    for key in raw:
        if key not in REQUIRED_MESSAGES:
            check.add(raw.key_spans[key], "unknown-key",
                      f"unknown message {key!r}{suggest(key, list(REQUIRED_MESSAGES))}")
        elif not isinstance(raw[key], str):
            check.add(raw.value_spans[key], "wrong-type", f"message {key!r} must be text")
        else:
            try:
                list(string.Formatter().parse(raw[key]))
            except ValueError as exc:
                check.add(raw.value_spans[key], "bad-message", f"message {key!r}: {exc}")
            out[key] = raw[key]
    for key in REQUIRED_MESSAGES:
        if key not in raw:
            check.add(raw.span, "missing-key", f"messages needs {key!r}")
    return out


def _vocabulary(check: _Check, top: PosDict) -> Vocabulary:
    answers = check.mapping(top.get("answers"), top.key_spans.get("answers", top.span), "answers", _ANSWERS)
    months: dict[str, int] = {}
    raw_months = answers.get("months")
    if isinstance(raw_months, PosList) and len(raw_months) == 12:
        for number, names in enumerate(raw_months, start=1):
            if not isinstance(names, PosList) or not names:
                check.add(raw_months.item_spans[number - 1], "wrong-type", "each month is a list of names")
                continue
            for name in names:
                months[normalize(str(name))] = number
    elif "months" in answers:
        check.add(answers.value_spans["months"], "wrong-type", "answers.months must list 12 months")
    commands_raw = check.mapping(top.get("commands"), top.key_spans.get("commands", top.span),
                                 "commands", {c: True for c in COMMANDS})
    commands: dict[str, str] = {}
    for command in COMMANDS:
        for alias in check.words(commands_raw, command, "commands"):
            commands[alias] = command
    words = {key: frozenset(check.words(answers, key, "answers")) for key in ("yes", "no", "unknown", "today")}
    overlap = (words["yes"] & words["no"]) | ((words["yes"] | words["no"]) & words["unknown"])
    if overlap:
        check.add(answers.span, "ambiguous-word", f"words with two meanings: {', '.join(sorted(overlap))}")
    return Vocabulary(words["yes"], words["no"], words["unknown"], words["today"], months, commands)


def _questions(check: _Check, top: PosDict, trial: Trial, vocabulary: Vocabulary) -> dict[str, Question]:
    raw = check.mapping(top.get("facts"), top.key_spans.get("facts", top.span), "facts", None)
    wanted = [name for name in trial.facts if name != trial.id_fact]
    questions: dict[str, Question] = {}
    for fact in raw:
        if fact not in trial.facts or fact == trial.id_fact:
            check.add(raw.key_spans[fact], "unknown-fact",
                      f"question for {fact!r}, which is not a fact of {trial.id}{suggest(fact, wanted)}")
            continue
        question = _question(check, raw, fact, trial, vocabulary)
        if question is not None:
            questions[fact] = question
    for fact in wanted:
        if fact not in raw:
            check.add(raw.span, "missing-question", f"fact {fact!r} has no question")
    return questions


def _question(check: _Check, raw: PosDict, fact: str, trial: Trial, vocabulary: Vocabulary) -> Question | None:
    what = f"facts.{fact}"
    entry = check.mapping(raw[fact], raw.value_spans[fact], what, _QUESTION)
    spec = trial.facts[fact]
    order = entry.get("order")
    if isinstance(order, bool) or not isinstance(order, int):
        if "order" in entry:
            check.add(entry.value_spans["order"], "wrong-type", f"{what}.order must be a whole number")
        order = 0
    synonyms: dict[str, Any] = {}
    raw_synonyms = entry.get("synonyms")
    if raw_synonyms is not None:
        table = check.mapping(raw_synonyms, entry.value_spans["synonyms"], f"{what}.synonyms", None)
        for target in table:
            canonical: Any = target
            if spec.type == "boolean":
                canonical = {"true": True, "false": False}.get(target)
            elif spec.type == "enum" and target not in spec.values:
                canonical = None
            elif spec.type in ("integer", "decimal"):
                canonical = target if is_number(target) else None
            if canonical is None:
                check.add(table.key_spans[target], "bad-synonym",
                          f"{what}: {target!r} is not a value of {fact}{suggest(target, list(spec.values))}")
                continue
            for word in check.words(table, target, f"{what}.synonyms"):
                if word in vocabulary.commands:
                    check.add(table.value_spans[target], "bad-synonym", f"{what}: {word!r} is a command")
                synonyms[word] = canonical
    units: list[Unit] = []
    raw_units = entry.get("units")
    if raw_units is not None:
        if spec.type not in ("decimal", "quantity") or not isinstance(raw_units, PosList):
            check.add(entry.value_spans["units"], "wrong-type",
                      f"{what}.units is a list, for decimal and quantity facts")
        else:
            for item, span in zip(raw_units, raw_units.item_spans):
                unit = check.mapping(item, span, f"{what}.units", _UNIT)
                factor = unit.get("factor")
                if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 0:
                    check.add(unit.value_spans.get("factor", span), "wrong-type",
                              f"{what}.units: factor must be a positive number")
                    factor = 1
                names = tuple(n.replace(" ", "") for n in check.words(unit, "names", f"{what}.units"))
                units.append(Unit(check.text(unit, "unit", f"{what}.units"), float(factor), names))
            if units and units[0].factor != 1:
                check.add(raw_units.span, "bad-unit", f"{what}: the first unit must be the fact's own (factor 1)")
    default = entry.get("default")
    if default is not None and (default not in DEFAULTS or spec.type != "date"):
        check.add(entry.value_spans["default"], "bad-default",
                  f"{what}.default: only {', '.join(DEFAULTS)} for date facts")
        default = None
    roman = entry.get("roman", False)
    if not isinstance(roman, bool) or (roman and spec.type != "integer"):
        check.add(entry.value_spans.get("roman", entry.span), "wrong-type",
                  f"{what}.roman is true or false, for whole-number facts")
        roman = False
    return Question(
        fact=fact, order=order, text=check.text(entry, "question", what),
        help=check.text(entry, "help", what), hint=check.text(entry, "hint", what),
        synonyms=synonyms, units=tuple(units), roman=roman, default=default, span=entry.span,
        label=check.text(entry, "label", what) if "label" in entry else "",
        values=_value_labels(check, entry, what, spec), section=_section_of(check, entry, what),
        plausible=_plausible(check, entry, what, spec), refusal=_refusal(check, entry, what, spec),
        fields=_fields(check, entry, what, spec), modifiers=_modifiers(check, entry, what, spec),
    )


def _modifiers(check: _Check, entry: PosDict, what: str, spec: Any) -> tuple[str, ...]:
    if "modifiers" not in entry:
        return ()
    if spec.type != "integer":
        check.add(entry.value_spans["modifiers"], "wrong-type", f"{what}.modifiers is for whole-number facts")
        return ()
    return tuple(check.words(entry, "modifiers", what))


def _fields(check: _Check, entry: PosDict, what: str, spec: Any) -> dict[str, ItemField]:
    """The `fields:` of a list question: each field's label, the words that name it, its
    values' labels and synonyms (enum fields)."""
    if "fields" not in entry:
        return {}
    raw = check.mapping(entry["fields"], entry.value_spans["fields"], f"{what}.fields", None)
    if spec.type != "list":
        check.add(entry.value_spans["fields"], "wrong-type", f"{what}.fields is for list facts")
        return {}
    specs = {item.name: item for item in spec.item}
    found: dict[str, ItemField] = {}
    for name in raw:
        where = f"{what}.fields.{name}"
        if name not in specs:
            check.add(raw.key_spans[name], "unknown-fact",
                      f"{where}: {spec.name} items have no field {name!r}{suggest(str(name), list(specs))}")
            continue
        body = check.mapping(raw[name], raw.value_spans[name], where, _FIELD)
        item = specs[name]
        values: dict[str, str] = {}
        synonyms: dict[str, str] = {}
        for key, target in (("values", values), ("synonyms", synonyms)):
            if key not in body:
                continue
            table = check.mapping(body[key], body.value_spans[key], f"{where}.{key}", None)
            for value in table:
                special = item.type == "date" and key == "synonyms" and value in ("never", "ongoing")
                if not special and (item.type != "enum" or value not in item.values):
                    check.add(table.key_spans[value], "bad-synonym", f"{where}.{key}: {value!r} is not a "
                              f"value of {name}{suggest(str(value), list(item.values))}")
                elif key == "values":
                    values[str(value)] = check.text(table, value, f"{where}.{key}")
                else:
                    for word in check.words(table, value, f"{where}.{key}"):
                        synonyms[word] = str(value)
        names = tuple(check.words(body, "names", where)) if "names" in body else ()
        label = check.text(body, "label", where) if "label" in body else ""
        typed = sorted({n.replace(" ", "") for n in (*names, *([normalize(label)] if label else []))})
        found[str(name)] = ItemField(str(name), label, tuple(typed), values, synonyms)
    return found


def _refusal(check: _Check, entry: PosDict, what: str, spec: Any) -> bool:
    refusal = entry.get("refusal", False)
    if not isinstance(refusal, bool) or (refusal and spec.type != "boolean"):
        check.add(entry.value_spans.get("refusal", entry.span), "wrong-type",
                  f"{what}.refusal is true or false, for yes/no facts")
        return False
    return refusal


def _value_labels(check: _Check, entry: PosDict, what: str, spec: Any) -> dict[str, str]:
    if "values" not in entry:
        return {}
    raw = check.mapping(entry["values"], entry.value_spans["values"], f"{what}.values", None)
    labels: dict[str, str] = {}
    for value in raw:
        if spec.type != "enum" or value not in spec.values:
            check.add(raw.key_spans[value], "bad-synonym",
                      f"{what}.values: {value!r} is not a value of {spec.name}{suggest(str(value), list(spec.values))}")
            continue
        labels[str(value)] = check.text(raw, value, f"{what}.values")
    return labels


def _section_of(check: _Check, entry: PosDict, what: str) -> str:
    if "section" not in entry:
        return ""
    return check.text(entry, "section", what)


def _plausible(check: _Check, entry: PosDict, what: str, spec: Any) -> Plausible | None:
    if "plausible" not in entry:
        return None
    span = entry.value_spans["plausible"]
    if spec.type in ("integer", "decimal", "quantity"):
        raw = check.mapping(entry["plausible"], span, f"{what}.plausible", _PLAUSIBLE_NUMBER)
        bounds = {}
        for key in ("min", "max"):
            value = raw.get(key)
            if value is not None and not is_number(value):
                check.add(raw.value_spans[key], "wrong-type", f"{what}.plausible.{key} must be a number")
                value = None
            bounds[key] = float(value) if value is not None else None
        return Plausible(low=bounds["min"], high=bounds["max"])
    if spec.type == "date":
        raw = check.mapping(entry["plausible"], span, f"{what}.plausible", _PLAUSIBLE_DATE)
        days = {}
        for key in ("years_before", "days_after"):
            value = raw.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                check.add(raw.value_spans[key], "wrong-type",
                          f"{what}.plausible.{key} must be a whole number, 0 or more")
                value = None
            days[key] = value
        return Plausible(years_before=days["years_before"], days_after=days["days_after"])
    check.add(span, "wrong-type", f"{what}.plausible is for number and date facts")
    return None
