"""What a function gives for an object, found once per object and kept.

Trials and fact specs are frozen but hold dicts, so they cannot be dict keys; they are kept by
their id, beside the object itself, so that a freed object's id, reused by a new one, is never
mistaken for it. A few hundred objects at most are kept: past that, those seen long ago (the
trials of an earlier run in a long-lived process) are forgotten and found again if they come.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

O = TypeVar("O")
V = TypeVar("V")


class PerObject(Generic[O, V]):
    """`make(obj)` for each object, made once (by identity) and kept, `limit` objects at most."""

    def __init__(self, make: Callable[[O], V], limit: int = 256):
        self._make = make
        self._limit = limit
        self._known: dict[int, tuple[O, V]] = {}

    def __call__(self, obj: O) -> V:
        known = self._known.get(id(obj))
        if known is None or known[0] is not obj:
            if len(self._known) >= self._limit:
                self._known.clear()
            known = self._known[id(obj)] = (obj, self._make(obj))
        return known[1]
