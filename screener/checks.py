"""Collecting problems in a YAML file (rules or dialog) with their positions.

A `Checker` never raises: it records each problem as `file:line:col: code: message` so a
file's problems are reported together, sorted, by the caller.
"""
from __future__ import annotations

from typing import Any

from screener.rules.parse import suggest
from screener.errors import RuleProblem
from screener.rules.read import PosDict
from screener.model import Span


class Checker:
    """Accumulates the problems of one file (`shown` is the name used in messages)."""

    def __init__(self, shown: str):
        self.shown = shown
        self.problems: list[RuleProblem] = []

    def add(self, span: Span, code: str, message: str) -> None:
        self.problems.append(RuleProblem(self.shown, span.line, span.column, code, message))

    def mapping(self, value: Any, span: Span, what: str, keys: dict[str, bool] | None) -> PosDict | None:
        """Check a mapping's keys (`keys`: name -> required; None accepts any key).

        Returns the mapping, or None (with a problem recorded) when `value` is not one.
        """
        if not isinstance(value, PosDict):
            self.add(span, "wrong-type", f"{what} must be a mapping")
            return None
        if keys is not None:
            for key in value:
                if key not in keys:
                    self.add(value.key_spans[key], "unknown-key",
                             f"unknown key {key!r} in {what}{suggest(key, list(keys))}")
            for key, required in keys.items():
                if required and key not in value:
                    self.add(value.span, "missing-key", f"{what} needs {key!r}")
        return value

    def text(self, mapping: PosDict, key: str, what: str, default: str = "") -> str:
        """The non-empty text at `key`, stripped; `default` (and a problem if given) otherwise."""
        value = mapping.get(key)
        if not isinstance(value, str) or not value.strip():
            if key in mapping:
                self.add(mapping.value_spans[key], "wrong-type", f"{what}.{key} must be non-empty text")
            return default
        return value.strip()
