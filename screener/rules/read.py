"""YAML in, plain Python out, with the source position of every mapping key and list item.

Scalars are read with YAML 1.2 core rules, not PyYAML's YAML 1.1 defaults: only
`true`/`false` are booleans, `no`/`off`/`yes` stay strings, `2001-02-03` stays a string,
`010` is ten and `12:30` is text. Duplicate keys are refused. Only composing is used (safe,
builds nodes, constructs nothing), through `BoundedLoader`, which refuses anchors and aliases
(a few lines of aliases can stand for billions of nodes) and nesting deeper than
`DEPTH_LIMIT`; merge keys (`<<`) are refused too. A plain integer longer than
`MAX_NUMBER_CHARS` stays text, for the next stage to refuse with its position.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import yaml

from screener.errors import RuleProblem, RulesError
from screener.model import Span
from screener.paths import read_regular
from screener.values import MAX_NUMBER_CHARS

DEPTH_LIMIT = 64
MERGE_TAG = "tag:yaml.org,2002:merge"

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


class NodeRefused(yaml.composer.ComposerError):
    """A node this loader does not build: an anchor, an alias, or one nested too deep."""

    def __init__(self, code: str, problem: str, mark: yaml.Mark | None):
        super().__init__(None, None, problem, mark)
        self.code = code


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, composing only: no anchors or aliases, nesting bounded.

    `open_collections` counts the sequences and mappings started and not yet ended, so a
    reader can skip the rest of an item after a refusal and go on with the next one.
    """

    def __init__(self, stream: Any):
        super().__init__(stream)
        # kept in the order found, and read from the front in constant time (see below)
        self.possible_simple_keys = OrderedDict(self.possible_simple_keys)
        self.depth = 0
        self.open_collections = 0

    def get_event(self) -> Any:
        event = super().get_event()
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            self.open_collections += 1
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            self.open_collections -= 1
        return event

    # PyYAML's scanner keeps a possible simple key per open bracket and, at every token,
    # looks at all of them: text nested 100,000 deep took hours to scan (to skip a record
    # already refused as too deep). The keys are kept in the order they were found, so the
    # stale ones (an earlier line, or over 1024 characters back) come first and the first
    # one is the nearest: both questions are answered from the front, the same answers in
    # constant time (an OrderedDict: a plain dict's iteration walks past every deleted
    # entry first).
    def stale_possible_simple_keys(self) -> None:
        keys = self.possible_simple_keys
        while keys:
            level, key = next(iter(keys.items()))
            if key.line == self.line and self.index - key.index <= 1024:
                return
            if key.required:
                raise yaml.scanner.ScannerError("while scanning a simple key", key.mark,
                                                "could not find expected ':'", self.get_mark())
            del keys[level]

    def next_possible_simple_key(self) -> int | None:
        keys = self.possible_simple_keys
        return next(iter(keys.values())).token_number if keys else None

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise NodeRefused("yaml-alias", f"the alias *{event.anchor} is not allowed: "
                              "anchors and aliases are not read", event.start_mark)
        if getattr(event, "anchor", None) is not None:
            raise NodeRefused("yaml-alias", f"the anchor &{event.anchor} is not allowed: "
                              "anchors and aliases are not read", event.start_mark)
        if self.depth >= DEPTH_LIMIT:
            raise NodeRefused("too-deep", f"nested deeper than {DEPTH_LIMIT} levels", event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def is_merge_key(node: yaml.Node) -> bool:
    """True for a plain `<<` key, which YAML 1.1 reads as "merge another mapping in here"."""
    return isinstance(node, yaml.ScalarNode) and node.tag == MERGE_TAG


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
        return int(text) if len(text) <= MAX_NUMBER_CHARS else text
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
            if is_merge_key(key_node):
                problems.append(RuleProblem(path, where.line, where.column, "yaml-merge",
                                            "merge keys (<<) are not allowed; write the keys out"))
                continue
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
            where = _span(path, value_node)
            if isinstance(value_node, yaml.ScalarNode) and value_node.style in ("'", '"'):
                where = Span(path, where.line, where.column + 1)  # the text starts after the quote
            mapping.value_spans[key] = where
        return mapping
    raise AssertionError(f"unexpected YAML node {node!r}")  # compose yields only these three


def load_yaml(path: str | Path, display: str | None = None) -> Any:
    """Read a YAML file into PosDict/PosList/scalars.

    Returns the document (None for an empty file). Raises RulesError with
    `file:line:col` for syntax errors, anchors and aliases, merge keys, nesting deeper
    than DEPTH_LIMIT, and duplicate keys.
    """
    shown = display or str(path)
    try:
        text = read_regular(path).decode("utf-8-sig")  # a FIFO is refused, never waited on
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([RuleProblem(shown, 1, 1, "unreadable", str(exc))]) from exc
    return load_yaml_text(text, shown)


def load_yaml_text(text: str, shown: str, problems: list[RuleProblem] | None = None) -> Any:
    """Like `load_yaml` for text already in memory; `shown` names it in messages.

    With a `problems` list, duplicate keys are appended to it instead of raised, so the
    caller can report them together with its own findings.
    """
    try:
        node = yaml.compose(text, Loader=BoundedLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = str(exc.problem or exc)
        if exc.context and exc.context_mark is not None:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        code = exc.code if isinstance(exc, NodeRefused) else "yaml-syntax"
        raise RulesError([RuleProblem(shown, line, column, code, message)]) from exc
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
