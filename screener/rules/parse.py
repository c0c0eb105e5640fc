"""The condition language of criteria: parsed by a small recursive-descent parser, never evaluated.

    condition := or
    or        := and ("or" and)*
    and       := unary ("and" unary)*
    unary     := "not" unary | "(" condition ")" | "true" | "false" | test
    test      := FACT                                  -- a yes/no fact is true
               | FACT ("=="|"!="|"<"|"<="|">"|">=") LITERAL
               | FACT "in" "[" LITERAL ("," LITERAL)* "]"
    LITERAL   := number | word | "true" | "false" | 'quoted text' | "quoted text"

Every fact and literal is checked against the data dictionary while parsing, so a typo or a
type mismatch is reported when the rules load, with its line and column.
"""
from __future__ import annotations

import datetime as dt
import difflib
import re
from dataclasses import dataclass

from screener.model import And, Compare, Const, Expr, FactSpec, FactValue, In, Not, Or

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d+)?(?![\w-]))
      | (?P<date>\d{4}-\d{2}-\d{2})
      | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
      | (?P<word>[^\W\d]\w*)
      | '(?P<sq>[^']*)'
      | "(?P<dq>[^"]*)"
    )""",
    re.VERBOSE | re.UNICODE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false"}
_ORDERED = {"integer", "decimal", "date"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # number, date, op, word, text, end
    text: str
    offset: int


class ConditionError(Exception):
    """A condition could not be parsed or checked; `offset` is where, within the text."""

    def __init__(self, offset: int, code: str, message: str):
        self.offset = offset
        self.code = code
        self.message = message
        super().__init__(message)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            start = pos + (len(text[pos:]) - len(text[pos:].lstrip()))
            raise ConditionError(start, "syntax", f"unexpected character {text[start]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind in ("sq", "dq"):
            kind = "text"
        tokens.append(Token(kind, value, match.start(match.lastgroup or 0)))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Parser:
    def __init__(self, text: str, facts: dict[str, FactSpec]):
        self.text = text
        self.facts = facts
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def expect(self, text: str) -> Token:
        token = self.take()
        if token.text != text or token.kind not in ("op", "word"):
            found = token.text or "end of condition"
            raise ConditionError(token.offset, "syntax", f"expected {text!r}, found {found!r}")
        return token

    def parse(self) -> Expr:
        expr = self.parse_or()
        token = self.peek()
        if token.kind != "end":
            raise ConditionError(token.offset, "syntax", f"unexpected {token.text!r}")
        return expr

    def parse_or(self) -> Expr:
        operands = [self.parse_and()]
        while self.peek().kind == "word" and self.peek().text == "or":
            self.take()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def parse_and(self) -> Expr:
        operands = [self.parse_unary()]
        while self.peek().kind == "word" and self.peek().text == "and":
            self.take()
            operands.append(self.parse_unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def parse_unary(self) -> Expr:
        token = self.peek()
        if token.kind == "word" and token.text == "not":
            self.take()
            return Not(self.parse_unary())
        if token.kind == "op" and token.text == "(":
            self.take()
            inner = self.parse_or()
            self.expect(")")
            return inner
        if token.kind == "word" and token.text in ("true", "false"):
            self.take()
            return Const(token.text == "true")
        return self.parse_test()

    def parse_test(self) -> Expr:
        token = self.take()
        if token.kind != "word" or token.text in _KEYWORDS:
            found = token.text or "end of condition"
            raise ConditionError(token.offset, "syntax", f"expected a fact name, found {found!r}")
        spec = self.facts.get(token.text)
        if spec is None:
            raise ConditionError(
                token.offset, "unknown-fact",
                f"{token.text!r} is not in the data dictionary{suggest(token.text, list(self.facts))}",
            )
        nxt = self.peek()
        if nxt.kind == "op" and nxt.text in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            if nxt.text not in ("==", "!=") and spec.type not in _ORDERED:
                raise ConditionError(
                    nxt.offset, "wrong-type", f"{spec.name} is {spec.type}: it has no order for {nxt.text!r}"
                )
            return Compare(spec.name, nxt.text, self.literal(spec))
        if nxt.kind == "word" and nxt.text == "in":
            self.take()
            self.expect("[")
            values = [self.literal(spec)]
            while self.peek().text == ",":
                self.take()
                values.append(self.literal(spec))
            self.expect("]")
            return In(spec.name, tuple(values))
        if spec.type != "boolean":
            raise ConditionError(
                token.offset, "wrong-type",
                f"{spec.name} is {spec.type}, not yes/no: compare it with a value",
            )
        return Compare(spec.name, "==", True)

    def literal(self, spec: FactSpec) -> FactValue:
        token = self.take()
        wrong = ConditionError(
            token.offset, "wrong-type",
            f"{token.text or 'end of condition'!r} is not a value of {spec.name} ({spec.type})",
        )
        if spec.type == "boolean":
            if token.kind == "word" and token.text in ("true", "false"):
                return token.text == "true"
            raise wrong
        if spec.type == "integer":
            if token.kind == "number" and "." not in token.text:
                return int(token.text)
            raise wrong
        if spec.type == "decimal":
            if token.kind == "number":
                return float(token.text)
            raise wrong
        if spec.type == "date":
            if token.kind in ("date", "text"):
                try:
                    return dt.date.fromisoformat(token.text)
                except ValueError:
                    raise wrong from None
            raise wrong
        if spec.type == "enum":
            if token.kind in ("word", "text") and token.text in spec.values:
                return token.text
            if token.kind in ("word", "text"):
                raise ConditionError(
                    token.offset, "unknown-value",
                    f"{token.text!r} is not one of {spec.name}'s values "
                    f"{list(spec.values)}{suggest(token.text, list(spec.values))}",
                )
            raise wrong
        if token.kind in ("text", "word"):
            return token.text
        raise wrong


def parse_condition(text: str, facts: dict[str, FactSpec]) -> Expr:
    """Parse and type-check a condition; returns its expression tree, raises ConditionError."""
    return _Parser(text, facts).parse()
