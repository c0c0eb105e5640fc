"""The dialog of a trial that has no dialog file: made from its rules file.

A site trial often comes as a rules file alone. Rather than refuse to screen it in the
terminal, the screener asks each fact with its description from the rules file, in the order
the facts are written there, with an answer hint from the fact's type and unit, and the
screener's own English messages (`screener/templates/default.en.yaml`). A dialog file
(docs/dialogs.md) does better: clinical labels, help, synonyms, sections, other languages;
`screener check` says which trials lack one.
"""
from __future__ import annotations

import json
import tempfile
from importlib import resources
from pathlib import Path

from screener.dialog.spec import DialogSpec, load_dialog
from screener.model import FactSpec, Trial
from screener.present import humanize, label_from, unit_text


def _hint(spec: FactSpec) -> str:
    """How to answer `spec`, from its type: `yes / no`, `a date, or never`, `a number in mmol/L`."""
    unit = unit_text(spec.unit)
    if spec.type == "boolean":
        return "yes / no"
    if spec.type == "enum":
        return " / ".join(spec.values)
    if spec.type == "date":
        extra = "".join(f", or {special.value}" for special in spec.special)
        return f"a date, e.g. 2025-03-01{extra}"
    if spec.type == "integer":
        return f"a whole number{f' ({unit})' if unit else ''}"
    if spec.type in ("decimal", "quantity"):
        return f"a number in {unit}" if unit else "a number"
    if spec.type == "list":
        fields = ", ".join(f"{item.name}=..." for item in spec.item)
        return f"one line, items separated by ';': {fields}; none if none"
    return "text"


def default_dialog_text(trial: Trial) -> str:
    """The dialog file (YAML) the screener makes for `trial`: its messages, then one question
    per fact a person can answer (not the candidate id, not a context fact)."""
    common = resources.files("screener.templates").joinpath("default.en.yaml").read_text(encoding="utf-8")
    lines = [common, f"dialog:\n  trial: {json.dumps(trial.id)}\n  language: en\n", "facts:"]
    for order, (name, spec) in enumerate(trial.facts.items(), 1):
        if name == trial.id_fact or spec.context:
            continue
        description = " ".join(spec.description.split()) or humanize(name)
        question = description.rstrip(".") + "?"
        lines += [f"  {name}:", f"    order: {order * 10}",
                  f"    label: {json.dumps(label_from(name, description), ensure_ascii=False)}",
                  f"    question: {json.dumps(question, ensure_ascii=False)}",
                  f"    help: {json.dumps(description, ensure_ascii=False)}",
                  f"    hint: {json.dumps(_hint(spec), ensure_ascii=False)}"]
    return "\n".join(lines) + "\n"


def default_dialog(trial: Trial) -> DialogSpec:
    """The English dialog made from `trial`'s rules file (see the module's docstring)."""
    with tempfile.TemporaryDirectory(prefix="screener-dialog-") as directory:
        path = Path(directory) / f"{trial.id}.en.yaml"
        path.write_text(default_dialog_text(trial), encoding="utf-8")
        return load_dialog(path, trial, display=f"<dialog made from {Path(trial.path).name}>")
