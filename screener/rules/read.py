"""YAML in, plain Python out, with the source position of every mapping key and list item.

Scalars are read with YAML 1.2 core rules, not PyYAML's YAML 1.1 defaults: only
`true`/`false` are booleans, `no`/`off`/`yes` stay strings, `2001-02-03` stays a string,
`010` is ten and `12:30` is text. Duplicate keys are refused. Only `yaml.compose` (safe,
builds nodes, constructs nothing) is used.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from screener.errors import RuleProblem, RulesError
from screener.model import Span

_INT = re.compile(r"[-+]?[0-9]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}


class PosDict(dict):  # type: ignore[type-arg]
    """A mapping that remembers where it and each of its keys were written."""

    span: Span
    key_spans: dict[str, Span]
    value_spans: dict[str, Span]


class PosList(list):  # type: ignore[type-arg]
    """A sequence that remembers where it and each of its items were written."""

    span: Span
    item_spans: list[Span]


def _span(path: str, node: yaml.Node) -> Span:
    return Span(path, node.start_mark.line + 1, node.start_mark.column + 1)


def scalar(text: str, plain: bool) -> Any:
    """Read one scalar the YAML 1.2 core way; quoted scalars are always strings."""
    if not plain:
        return text
    if text in _NULL:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


def _convert(path: str, node: yaml.Node, problems: list[RuleProblem]) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return scalar(node.value, node.style is None)
    if isinstance(node, yaml.SequenceNode):
        out = PosList()
        out.span = _span(path, node)
        out.item_spans = []
        for item in node.value:
            out.append(_convert(path, item, problems))
            out.item_spans.append(_span(path, item))
        return out
    if isinstance(node, yaml.MappingNode):
        mapping = PosDict()
        mapping.span = _span(path, node)
        mapping.key_spans = {}
        mapping.value_spans = {}
        for key_node, value_node in node.value:
            key = _convert(path, key_node, problems)
            where = _span(path, key_node)
            if not isinstance(key, str):
                problems.append(
                    RuleProblem(path, where.line, where.column, "bad-key", f"key {key!r} must be text")
                )
                key = str(key)
            if key in mapping:
                first = mapping.key_spans[key]
                problems.append(
                    RuleProblem(
                        path, where.line, where.column, "duplicate-key",
                        f"{key!r} is already given at line {first.line}",
                    )
                )
                continue
            mapping[key] = _convert(path, value_node, problems)
            mapping.key_spans[key] = where
            mapping.value_spans[key] = _span(path, value_node)
        return mapping
    raise AssertionError(f"unexpected YAML node {node!r}")  # compose yields only these three


def load_yaml(path: str | Path, display: str | None = None) -> Any:
    """Read a YAML file into PosDict/PosList/scalars.

    Returns the document (None for an empty file). Raises RulesError with
    `file:line:col` for syntax errors, anchors/aliases or tags, and duplicate keys.
    """
    shown = display or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([RuleProblem(shown, 1, 1, "unreadable", str(exc))]) from exc
    return load_yaml_text(text, shown)


def load_yaml_text(text: str, shown: str, problems: list[RuleProblem] | None = None) -> Any:
    """Like `load_yaml` for text already in memory; `shown` names it in messages.

    With a `problems` list, duplicate keys are appended to it instead of raised, so the
    caller can report them together with its own findings.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = str(exc.problem or exc)
        if exc.context and exc.context_mark is not None:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise RulesError([RuleProblem(shown, line, column, "yaml-syntax", message)]) from exc
    except yaml.YAMLError as exc:
        raise RulesError([RuleProblem(shown, 1, 1, "yaml-syntax", str(exc))]) from exc
    if node is None:
        return None
    found: list[RuleProblem] = []
    document = _convert(shown, node, found)
    if problems is not None:
        problems.extend(found)
    elif found:
        raise RulesError(found)
    return document
