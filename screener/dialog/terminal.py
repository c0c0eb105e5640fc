"""Two ways to read an answer: prompt-toolkit on a terminal, plain lines otherwise.

Both raise EOFError at end of input and let KeyboardInterrupt through; the flow turns either
into "save and stop". A SIGINT is the dialog's to handle (screener.dialog.interrupt): it stops
a prompt with `PromptReader.interrupt`, as Ctrl-C typed at it does.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import IO, Any, Protocol

from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from rich.console import Console

Check = Callable[[str], "str | None"]  # returns a one-line reason when the text is not acceptable


class Reader(Protocol):
    def read(self, prompt: str, words: list[str], facts: list[str], check: Check) -> str:
        """One line of input; raises EOFError at end of input."""


class LineReader:
    """Plain lines from a stream (a pipe, a file, a test); the line is echoed after the prompt."""

    def __init__(self, stream: IO[str], console: Console):
        self.stream = stream
        self.console = console

    def read(self, prompt: str, words: list[str], facts: list[str], check: Check) -> str:
        self.console.print(prompt, end="", markup=False, highlight=False)
        self.console.file.flush()  # a driving program sees the question before we wait
        line = self.stream.readline()
        if line == "":
            self.console.print()
            raise EOFError
        line = line.rstrip("\r\n")
        self.console.print(line, markup=False, highlight=False)
        return line


class DialogCompleter(Completer):
    """Completes answer words, commands, and fact names after a `change` command."""

    def __init__(self, words: list[str], facts: list[str], change_words: Iterable[str]):
        self.words = words
        self.facts = facts
        self.change_words = tuple(f"{w} " for w in change_words)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        lowered = text.lower()
        for change in self.change_words:
            if lowered.startswith(change):
                stem = text[len(change):]
                for fact in self.facts:
                    if fact.startswith(stem.lower()):
                        yield Completion(fact, start_position=-len(stem))
                return
        for word in self.words:
            if word.startswith(lowered) and word != lowered:
                yield Completion(word, start_position=-len(text))


class PromptReader:
    """prompt-toolkit input with completion and a shared history."""

    def __init__(self, change_words: Iterable[str] = ("change",)):
        self.history = InMemoryHistory()
        self.change_words = list(change_words)
        self.app: Application[Any] | None = None  # the prompt being shown
        self.stopped: Callable[[], bool] = lambda: False  # a Ctrl-C came before the prompt showed

    def read(self, prompt: str, words: list[str], facts: list[str], check: Check) -> str:
        # A fresh session per question: prompt() keyword arguments stick to a session.
        session: PromptSession[str] = PromptSession(history=self.history)
        # No prompt-toolkit validator: it shows its message on the bottom line of the
        # terminal, far from the answer. A refused answer is taken as a line and the flow
        # prints the reason right under it, then asks again.
        # Ctrl-C typed at the prompt is a key to prompt-toolkit (KeyboardInterrupt); a SIGINT
        # is left to the dialog (`interrupt`), not to a handler of the prompt's own, which
        # loses one that comes while an answer is being accepted.
        self.app = session.app
        try:
            return session.prompt(
                prompt,
                completer=DialogCompleter(words, facts, self.change_words),
                complete_while_typing=False,
                handle_sigint=False,
                pre_run=lambda: self.stopped() and self.interrupt(),
            )
        finally:
            self.app = None

    def interrupt(self) -> bool:
        """Stop the prompt being shown as Ctrl-C typed at it does (`read` raises
        KeyboardInterrupt); safe in a signal handler. False when no prompt runs."""
        app = self.app
        loop = app.loop if app is not None else None
        if app is None or loop is None:
            return False
        loop.call_soon_threadsafe(_abort, app)
        return True


def _abort(app: Application[Any]) -> None:
    """End `app` with KeyboardInterrupt, unless it has ended already (an answer accepted)."""
    if app.is_running and app.future is not None and not app.future.done():
        app.exit(exception=KeyboardInterrupt, style="class:aborting")
