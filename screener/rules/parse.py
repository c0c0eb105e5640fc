"""The expression language of conditions, formulas and definitions: text -> syntax tree.

A small recursive-descent parser, never `eval`. Precedence, loosest first:

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | test
    test       := sum ( (CMP sum)+                          -- chained: a <= b <= c
                      | ["not"] "in" "[" item ("," item)* "]"
                      | "is" ["not"] ("never" | "ongoing")
                      | "within" sum ("before" | "after") sum )?
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | power
    power      := primary ("^" unary)?                   -- right-associative, -2^2 = -(2^2)
    primary    := NUMBER ['unit' | DURATION-WORD] | DATE | 'text' | "true" | "false"
                | NAME "(" [condition ("," condition)*] ")" | NAME | "(" condition ")"

Names are resolved and every part is type-checked afterwards (`screener.rules.typecheck`).
Limits (100,000 characters, 200 levels of nesting, 30 digits, 10,000 `in` values) are
reported as problems with their position, never as a crash.
"""
from __future__ import annotations

import difflib
import sys
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

MAX_LENGTH = 100_000
MAX_DEPTH = 200
MAX_DIGITS = 30
MAX_IN_VALUES = 10_000
# Each level of nesting costs about ten parser frames; stay clear of Python's default limit.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * MAX_DEPTH + 2000))

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<date>\d{4}-\d{2}-\d{2})(?![\w.])
      | (?P<number>\d+(?:\.\d+)?)
      | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\+|-|\*|/|\^)
      | (?P<word>[^\W\d]\w*)
      | '(?P<sq>[^']*)'
      | "(?P<dq>[^"]*)"
    )""",
    re.VERBOSE | re.UNICODE,
)
KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "is", "within", "before", "after"})
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
DURATION_WORDS = {
    "day": ("days", 1), "days": ("days", 1), "week": ("days", 7), "weeks": ("days", 7),
    "month": ("months", 1), "months": ("months", 1), "year": ("months", 12), "years": ("months", 12),
}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # number, date, op, word, text, end
    text: str
    offset: int


@dataclass(frozen=True, slots=True)
class Node:
    """A syntax node; `offset` is where it starts in the text (for messages).

    kinds: number (value Decimal), quantity (value, text=unit), duration (value, text=days|
    months), date, text, bool (value), name (text), call (text=function, args), neg (args),
    arith (text=op, args), cmp (text=op, args), in (args=(operand, items...), value=negated),
    is (text=never|ongoing, value=negated), within (text=before|after, args=(x, d, anchor)),
    not, and, or (args).
    """

    kind: str
    offset: int
    text: str = ""
    args: tuple["Node", ...] = ()
    value: Any = None


class ConditionError(Exception):
    """An expression could not be parsed or checked; `offset` is where, within the text."""

    def __init__(self, offset: int, code: str, message: str):
        self.offset = offset
        self.code = code
        self.message = message
        super().__init__(message)


def suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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


class _Parser:
    def __init__(self, text: str):
        if len(text) > MAX_LENGTH:
            raise ConditionError(0, "too-long", f"longer than {MAX_LENGTH:,} characters")
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def at(self, text: str, kind: str | None = None) -> bool:
        token = self.peek()
        return token.text == text and token.kind in ((kind,) if kind else ("op", "word"))

    def expect(self, text: str) -> Token:
        token = self.take()
        if token.text != text or token.kind not in ("op", "word"):
            found = token.text or "end of condition"
            raise ConditionError(token.offset, "syntax", f"expected {text!r}, found {found!r}")
        return token

    def deeper(self, offset: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(offset, "too-deep", f"nested more than {MAX_DEPTH} levels deep")

    def parse(self) -> Node:
        node = self.condition()
        token = self.peek()
        if token.kind != "end":
            raise ConditionError(token.offset, "syntax", f"unexpected {token.text!r}")
        return node

    def condition(self) -> Node:
        return self.binary_words("or", self.conjunction)

    def conjunction(self) -> Node:
        return self.binary_words("and", self.negation)

    def binary_words(self, word: str, inner: Any) -> Node:
        first = inner()
        operands = [first]
        while self.at(word, "word"):
            self.take()
            operands.append(inner())
        return first if len(operands) == 1 else Node(word, first.offset, args=tuple(operands))

    def negation(self) -> Node:
        token = self.peek()
        if token.kind == "word" and token.text == "not":
            self.take()
            self.deeper(token.offset)
            node = Node("not", token.offset, args=(self.negation(),))
            self.depth -= 1
            return node
        return self.test()

    def test(self) -> Node:
        left = self.sum()
        token = self.peek()
        if token.kind == "op" and token.text in COMPARISONS:
            operands, ops = [left], []
            while self.peek().kind == "op" and self.peek().text in COMPARISONS:
                ops.append(self.take())
                operands.append(self.sum())
            parts = [Node("cmp", op.offset, op.text, (a, b))
                     for op, a, b in zip(ops, operands, operands[1:])]
            return parts[0] if len(parts) == 1 else Node("and", left.offset, args=tuple(parts))
        if token.kind == "word" and (token.text == "in" or (
                token.text == "not" and self.peek(1).kind == "word" and self.peek(1).text == "in")):
            negated = token.text == "not"
            if negated:
                self.take()
            self.take()
            return Node("in", token.offset, args=(left, *self.items()), value=negated)
        if token.kind == "word" and token.text == "is":
            self.take()
            negated = self.at("not", "word")
            if negated:
                self.take()
            word = self.take()
            if word.kind != "word" or word.text not in ("never", "ongoing"):
                raise ConditionError(word.offset, "syntax",
                                     f"expected 'never' or 'ongoing', found {word.text or 'end of condition'!r}")
            return Node("is", token.offset, word.text, (left,), negated)
        if token.kind == "word" and token.text == "within":
            self.take()
            duration = self.sum()
            side = self.take()
            if side.kind != "word" or side.text not in ("before", "after"):
                raise ConditionError(side.offset, "syntax",
                                     f"expected 'before' or 'after', found {side.text or 'end of condition'!r}")
            return Node("within", token.offset, side.text, (left, duration, self.sum()))
        return left

    def items(self) -> tuple[Node, ...]:
        self.expect("[")
        items = [self.item()]
        while self.at(",", "op"):
            self.take()
            items.append(self.item())
            if len(items) > MAX_IN_VALUES:
                raise ConditionError(items[-1].offset, "too-large",
                                     f"more than {MAX_IN_VALUES:,} values in one list")
        self.expect("]")
        return tuple(items)

    def item(self) -> Node:
        token = self.peek()
        if token.kind == "op" and token.text == "-" and self.peek(1).kind == "number":
            self.take()
            number = self.primary()
            return Node("neg", token.offset, args=(number,))
        if token.kind in ("number", "date", "text", "word"):
            return self.primary()
        raise ConditionError(token.offset, "syntax", f"expected a value, found {token.text or 'end of condition'!r}")

    def sum(self) -> Node:
        left = self.product()
        while self.peek().kind == "op" and self.peek().text in ("+", "-"):
            op = self.take()
            left = Node("arith", op.offset, op.text, (left, self.product()))
        return left

    def product(self) -> Node:
        left = self.unary()
        while self.peek().kind == "op" and self.peek().text in ("*", "/"):
            op = self.take()
            left = Node("arith", op.offset, op.text, (left, self.unary()))
        return left

    def unary(self) -> Node:
        token = self.peek()
        if token.kind == "op" and token.text == "-":
            self.take()
            self.deeper(token.offset)
            node = Node("neg", token.offset, args=(self.unary(),))
            self.depth -= 1
            return node
        base = self.primary()
        if self.at("^", "op"):
            op = self.take()
            self.deeper(op.offset)
            node = Node("arith", op.offset, "^", (base, self.unary()))
            self.depth -= 1
            return node
        return base

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "number":
            digits = token.text.replace(".", "").lstrip("0")
            if len(digits) > MAX_DIGITS:
                raise ConditionError(token.offset, "too-large", f"a number of more than {MAX_DIGITS} digits")
            value = Decimal(token.text)
            nxt = self.peek()
            if nxt.kind == "text":
                self.take()
                return Node("quantity", token.offset, nxt.text, value=value)
            if nxt.kind == "word" and nxt.text in DURATION_WORDS:
                self.take()
                unit, times = DURATION_WORDS[nxt.text]
                return Node("duration", token.offset, unit, value=value * times)
            return Node("number", token.offset, token.text, value=value)
        if token.kind == "date":
            return Node("date", token.offset, token.text)
        if token.kind == "text":
            return Node("text", token.offset, token.text)
        if token.kind == "op" and token.text == "(":
            self.deeper(token.offset)
            inner = self.condition()
            self.expect(")")
            self.depth -= 1
            return inner
        if token.kind == "word" and token.text in ("true", "false"):
            return Node("bool", token.offset, token.text, value=token.text == "true")
        if token.kind == "word" and token.text not in KEYWORDS:
            if self.at("(", "op"):
                self.take()
                self.deeper(token.offset)
                args: list[Node] = []
                if not self.at(")", "op"):
                    args.append(self.condition())
                    while self.at(",", "op"):
                        self.take()
                        args.append(self.condition())
                self.expect(")")
                self.depth -= 1
                return Node("call", token.offset, token.text, tuple(args))
            return Node("name", token.offset, token.text)
        found = token.text or "end of condition"
        raise ConditionError(token.offset, "syntax", f"expected a fact name, found {found!r}")


def parse_syntax(text: str) -> Node:
    """Parse an expression into its syntax tree; raises ConditionError (never RecursionError)."""
    try:
        return _Parser(text).parse()
    except RecursionError:
        raise ConditionError(0, "too-deep", f"nested more than {MAX_DEPTH} levels deep") from None
