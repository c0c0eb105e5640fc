"""`screener screen` and `screener resume`: set up a screening dialog from argv and run it.

The session file remembers the screening's traces (path, letter path, and how far each chain
had come at the last save), its operator, language and trials, so `resume` goes on in the same
trace files after checking that they still end where the session left them.

Exit status: 0 when the screening reached its decision, 3 when it was saved to be resumed,
2 for a usage error, an unreadable rules, dialog, answers or session file, or a trace that
cannot be continued.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import IO, Any

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from screener.dialog import render, store, traces
from screener.audit.signing_cli import add_sign_options, signer_from_args
from screener.dialog.flow import Dialog, Observer
from screener.dialog.default import default_dialog
from screener.dialog.spec import DialogSpec, load_dialog
from screener.dialog.terminal import LineReader, PromptReader, Reader
from screener.engine import Screener
from screener.errors import ConflictError, RuleProblem, RulesError, ScreenerError
from screener.i18n import TZ_HELP, site_zone, tr, translate
from screener.rules.read import PosDict, load_yaml
from screener.safe import safe_console, safe_text
from screener.model import Trial
from screener.paths import inside
from screener.rules.check import load_trial
from screener.dialog.several import SEPARATOR, Portfolio, PortfolioDialog, SplitObserver
from screener.trials import RULES_DIR_HELP, TrialNotFound, catalog
from screener.values import context_facts
from screener.values import coerce

EXIT_DECIDED, EXIT_USAGE, EXIT_SAVED = 0, 2, 3

_EPILOG = ("exit status: 0 decided, 3 saved to resume later, 2 usage or file error (also a trace "
           "changed or removed since the screening stopped)")


def add_screen_parsers(subparsers: Any) -> None:
    """Add the `screen` and `resume` commands to the CLI's argparse subparsers."""
    screen = subparsers.add_parser(
        "screen", help="screen one patient in a guided dialog", epilog=_EPILOG,
        description="Ask only what still matters for the decision, one question at a time. "
                    "Reads plain lines when standard input is not a terminal.")
    screen.add_argument("--trial", action="append", metavar="TRIAL_ID",
                        help="a trial to screen for; repeat for several in one conversation "
                             "(default: every trial found)")
    screen.add_argument("--all-trials", action="store_true", help="screen for every trial found")
    screen.add_argument("--rules-dir", action="append", default=[], metavar="DIR", help=RULES_DIR_HELP)
    screen.add_argument("--lang", default="en", help="dialog language, e.g. en or zh (default: en)")
    screen.add_argument("--answers", metavar="FILE", type=Path, action="append",
                        help="YAML or JSON mapping fact -> value, or a FHIR R4 Bundle of the patient's "
                             "record, to pre-fill; only the rest is asked. Repeat for several")
    screen.add_argument("--as-of", metavar="DATE", type=_iso_date,
                        help="a record's lookback windows end on DATE (YYYY-MM-DD) when the "
                             "anchor date (the screening date) is not known before the questions; "
                             "without it such record values are asked instead")
    screen.add_argument("--id-system", metavar="URI",
                        help="a record's candidate id is the value of the Patient identifier with this "
                             "system (the site's MRN), not the Patient id")
    screen.add_argument("--session", metavar="PATH", type=Path,
                        help="session file (default: a new file under $XDG_STATE_HOME/screener/sessions)")
    screen.add_argument("--candidate-id", help="the patient's id in the screening log")
    screen.add_argument("--context", action="append", metavar="NAME=VALUE",
                        help="a context fact of the trial (site, cohort), never asked; repeat for several")
    screen.add_argument("--complete", action="store_true",
                        help="after an ineligible finding, ask the rest for the screening log")
    _add_audit_options(screen)
    screen.set_defaults(run=run_screen)

    resume = subparsers.add_parser(
        "resume", help="continue a saved screening dialog", epilog=_EPILOG,
        description="Continue a saved screening in its language, for its trials. A screening "
                    "started with --trace goes on in the same trace (and writes its letter at "
                    "the end): the pause and the resumption are recorded, earlier answers keep "
                    "their times; a trace changed or removed meanwhile is refused. Reopening a "
                    "finished one asks for the reason, which is kept in its history (a traced "
                    "one needs --trace NEW, linked to the sealed trace). A pending (undetermined) "
                    "screening goes on with the questions still open, in new numbered traces "
                    "linked to the sealed ones.")
    resume.add_argument("path", nargs="?", type=Path, metavar="ID",
                        help="session id as `screener sessions` lists it, a session file, or "
                             "the patient's candidate id (their latest screening still open) "
                             "(default: the latest one)")
    resume.add_argument("--lang", help="dialog language (default: the session's)")
    resume.add_argument("--rules-dir", action="append", default=[], metavar="DIR",
                        help=f"{RULES_DIR_HELP}; default: the directories the screening started with")
    _add_audit_options(resume)
    resume.set_defaults(run=run_resume)

    sessions = subparsers.add_parser(
        "sessions", help="list the saved screenings",
        description=f"List the saved screenings in {store.state_dir()}, newest first: id, trial, "
                    "started, status, answers so far and decision.")
    sessions.add_argument("--lang", default="en", help="language of the listing, e.g. en or zh (default: en)")
    sessions.set_defaults(run=run_sessions)


def run_sessions(args: argparse.Namespace, *, stdin: IO[str] | None = None,
                 stdout: IO[str] | None = None) -> int:
    """Print the saved screenings, newest first; returns 0."""
    console = _console(stdout)
    language = getattr(args, "lang", None) or "en"
    rows = store.listing()
    if not rows:
        console.print(tr("no saved screening in {folder}", folder=store.state_dir()).in_language(language),
                      markup=False)
        return EXIT_DECIDED
    header = tuple(word.in_language(language) for word in (
        tr("id"), tr("trial"), tr("candidate"), tr("started"), tr("status"), tr("answers"), tr("decision")))
    statuses = {"in_progress": tr("in_progress").in_language(language),
                "finished": tr("finished").in_language(language)}
    cells = [header] + [tuple(safe_text(str(cell)) for cell in (
        row.id, row.trial, row.candidate, row.started, statuses.get(row.status, row.status), row.answers,
        translate(language, row.decision) if row.decision else "—"))
        for row in rows]
    # Plain aligned columns, never cut: an id is meant to be copied into `screener resume ID`.
    # Widths are terminal cells: a Chinese character takes two.
    widths = [max(cell_len(line[i]) for line in cells) for i in range(len(header))]
    for line in cells:
        console.print("  ".join(cell + " " * (width - cell_len(cell)) for cell, width in zip(line, widths)).rstrip(),
                      markup=False, highlight=False, crop=False, overflow="ignore")
    return EXIT_DECIDED


def _add_audit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", metavar="PATH", type=Path,
                        help="write a tamper-evident trace of this screening to PATH (a new file; "
                             "on resume, only to start a new trace: the earlier answers are "
                             "recorded into it first; without it, resume goes on in the trace the "
                             "screening was started with); with several trials, one trace per "
                             "trial, the trial id put in the name (p1.trace.jsonl -> "
                             "p1.TRIAL.trace.jsonl), and so for --letter")
    parser.add_argument("--letter", metavar="PATH", type=Path,
                        help="write the eligibility letter to PATH when the screening ends "
                             "(.html for HTML, otherwise Markdown); needs --trace")
    parser.add_argument("--operator", metavar="NAME",
                        help="who screens, recorded in the trace and letter (on resume: who "
                             "continues, recorded with the resumption; default: who started)")
    parser.add_argument("--investigator", metavar="NAME",
                        help="the investigator responsible for the decision, whose name the letter "
                             "prints on its first page to sign, recorded in the trace (default: "
                             "the operator); kept by the session for the traces resume writes")
    parser.add_argument("--tz", metavar="ZONE", help=TZ_HELP)
    add_sign_options(parser)


def _check_audit_options(args: argparse.Namespace, dialog: DialogSpec, kept_trace: bool = False,
                         operator: str | None = None) -> None:
    """Raise ScreenerError for --trace/--letter/--tz problems, before anything is asked,
    worded in the dialog's language. A resumed screening goes on in the trace it remembers
    (`kept_trace`), which --sign-key seals, signed by default in the name of who started it
    (`operator`)."""
    trace, letter = getattr(args, "trace", None), getattr(args, "letter", None)
    if letter and not trace:
        raise ScreenerError(dialog.tr("--letter needs --trace (a letter is rendered from its trace)"))
    if getattr(args, "sign_key", None) and not (trace or kept_trace):
        raise ScreenerError("--sign-key needs --trace (a signature seals a trace)")
    zone = getattr(args, "tz", None)
    try:
        site_zone(zone)
    except ValueError:
        raise ScreenerError(dialog.tr("--tz {zone}: unknown time zone; expected a name such as "
                                      "Asia/Shanghai or Europe/Paris", zone=repr(zone))) from None
    # The key is unlocked before the first question, not when the screening ends.
    args.signing = signer_from_args(args, operator=operator)
    for option, path in (("--trace", trace), ("--letter", letter)):
        if path is None:
            continue
        if os.path.lexists(path):
            raise ScreenerError(dialog.tr("{option} {path}: already exists; audit files are never "
                                          "overwritten", option=option, path=path))
        folder = Path(path).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise ScreenerError(dialog.tr("{option} {path}: cannot write in {folder}",
                                          option=option, path=path, folder=folder))


def _audit_observer(args: argparse.Namespace, trial: Trial, dialog: DialogSpec,
                    candidate: str | None, portfolio: Portfolio | None = None,
                    session: store.Session | None = None) -> Any:
    """The trace writer for --trace/--letter, or None; raises ScreenerError on bad options.
    Each trace records the dialog's language and its wording of the trial, so its letter and
    explanation speak that language. With several trials, one trace (and letter) per trial,
    each verifiable on its own. For a `session` taken up again in new traces, each records
    the screening's operator and links the trace of its trial the session wrote before."""
    if getattr(args, "letter", None) and not getattr(args, "trace", None):
        raise ScreenerError("--letter needs --trace (a letter is rendered from its trace)")
    if not getattr(args, "trace", None):
        return None
    from screener.audit.artifacts import TraceObserver  # letters need jinja2: only when asked

    zone = site_zone(getattr(args, "tz", None))
    operator = (session.operator if session is not None else None) or args.operator
    investigator = getattr(args, "investigator", None) or (session.investigator if session is not None else None)
    if portfolio is None:
        return TraceObserver(args.trace, trial, operator=operator, investigator=investigator,
                             candidate_id=candidate,
                             letter_path=args.letter, language=dialog.language,
                             wording=dialog.wording(), zone=zone,
                             signer=getattr(args, "signing", None),
                             continues=traces.links(session, trial.id))
    observers: dict[str, Observer] = {}
    for member, _, member_dialog in portfolio.members:
        observers[member.id] = TraceObserver(
            _per_trial(args.trace, member.id), member, operator=operator, investigator=investigator,
            candidate_id=candidate,
            letter_path=_per_trial(args.letter, member.id) if args.letter else None,
            language=member_dialog.language, wording=member_dialog.wording(), zone=zone,
            signer=getattr(args, "signing", None), continues=traces.links(session, member.id))
    return SplitObserver(portfolio, observers)


def _per_trial(path: Path, trial_id: str) -> Path:
    """`p1.trace.jsonl` -> `p1.<trial_id>.trace.jsonl`: one file per trial of a portfolio, in
    the folder of `path`; raises PathEscape when the trial id would lead out of it."""
    stem, dot, rest = path.name.partition(".")
    return inside(path.parent, f"{stem}.{trial_id}{dot}{rest}" if dot else f"{stem}.{trial_id}")


def _load(trial_ids: list[str] | None, every: bool, rules_dirs: list[str],
          lang: str) -> tuple[Trial, DialogSpec, Portfolio | None]:
    """The trial and dialog to screen with: one trial as it is, several joined in a Portfolio.
    Raises TrialNotFound, RulesError or ScreenerError."""
    found = catalog(rules_dirs)
    chosen = found.select(trial_ids, every)
    if not trial_ids and not every and len(chosen) > 1:
        # by default, the trials that can be asked in this language
        chosen = [t for t in chosen if lang in t.languages] or chosen
    members = []
    for entry in chosen:
        trial = load_trial(entry.rules)
        members.append((trial, Screener(trial), _dialog_of(found, entry, trial, lang)))
    if len(members) == 1:
        return members[0][0], members[0][2], None
    portfolio = Portfolio(members)
    return portfolio.trial, portfolio.dialog, portfolio


def _dialog_of(found: Any, entry: Any, trial: Trial, lang: str) -> DialogSpec:
    """The trial's dialog file in `lang`; for a trial with no dialog file at all, the English
    dialog made from its rules file (`screener.dialog.default`). Raises TrialNotFound when
    the trial has dialog files, but none in `lang`."""
    try:
        return load_dialog(found.dialog_path(entry.id, lang), trial)
    except TrialNotFound:
        if entry.languages:
            raise
        return default_dialog(trial)


def run_screen(args: argparse.Namespace, *, stdin: IO[str] | None = None, stdout: IO[str] | None = None,
               observer: Observer | None = None) -> int:
    """Start a screening; returns the exit status."""
    stdin = stdin or sys.stdin
    console = _console(stdout)
    paths = args.answers if isinstance(args.answers, list) else [args.answers] if args.answers else []
    try:
        trial, dialog, portfolio = _load(args.trial, args.all_trials, args.rules_dir, args.lang)
        given, origin, record = _prefill_sources(paths, trial, dialog, args)
        _check_audit_options(args, dialog)
        context = context_facts(trial.facts, getattr(args, "context", None))
    except ScreenerError as exc:
        return _fail(console, exc)
    except ValueError as exc:
        return _fail(console, exc)
    carried = [name for name in given if name in trial.facts and trial.facts[name].context]
    if carried:
        return _fail(console, dialog.tr("{file}: {fact} is a context fact: give it with "
                                        "--context {fact}=VALUE", file=origin[carried[0]], fact=carried[0]))
    path = args.session or store.new_path()
    if path.exists():
        return _fail(console, dialog.tr("{path} exists; continue it with: screener resume {path}",
                                        path=path))
    reader = _reader(stdin, console, dialog)
    console.print(render.note(dialog.message("title", trial=trial.id, title=trial.title)))
    console.print(render.note(dialog.message("intro")))
    candidate = args.candidate_id or given.pop(trial.id_fact, None)
    given.pop(trial.id_fact, None)
    if candidate is None:
        try:
            candidate = _ask_candidate(reader, console, dialog)
        except (EOFError, KeyboardInterrupt):
            return EXIT_SAVED
    session = store.Session(path=path, trial_id=trial.id, trial_hash=trial.content_hash,
                            language=args.lang, candidate_id=str(candidate), complete=args.complete,
                            operator=args.operator, investigator=args.investigator,
                            rules_dirs=tuple(str(Path(d).resolve()) for d in args.rules_dir))
    try:
        observer = observer or _audit_observer(args, trial, dialog, str(candidate), portfolio)
    except (ScreenerError, OSError) as exc:
        return _fail(console, exc)
    for name, value in context.items():  # recorded first, so a resumed screening keeps them
        session.answer(name, value, "context", f"--context {name}")
        if observer is not None:
            observer.fact(name, value, "context")
    try:
        try:
            flow = _dialog(trial, dialog, reader, console, session, observer, portfolio)
            problems = flow.prefill({k: v for k, v in given.items() if v is not None}, record.sources)
        except ConflictError as exc:
            return _fail(console, render.conflict(dialog, exc))
        except OSError as exc:
            return _fail(console, exc)
        if problems:
            return _fail(console, "\n".join(f"{origin.get(p.split(':', 1)[0], paths[0])}: {p}" for p in problems))
        for note in record.notes:
            console.print(render.note(note))
        shown = [f for f in record.sources if f in session.answers]
        if shown:
            console.print(render.from_record(dialog, shown, session.answers, session.sources))
        return _run(flow)
    finally:
        _close(observer)


def run_resume(args: argparse.Namespace, *, stdin: IO[str] | None = None, stdout: IO[str] | None = None,
               observer: Observer | None = None) -> int:
    """Continue a saved screening; returns the exit status."""
    stdin = stdin or sys.stdin
    console = _console(stdout)
    language = args.lang or "en"  # until the session says its own
    path = store.find(args.path) if args.path else store.latest()
    if path is None:
        missing = (tr("no saved screening {name} in {folder}", name=str(args.path), folder=store.state_dir())
                   if args.path else tr("no saved screening in {folder}", folder=store.state_dir()))
        return _fail(console, missing.in_language(language))
    try:
        saved = store.read_data(Path(path))
        trial_id = saved.get("trial")
        ids = trial_id.split(SEPARATOR) if isinstance(trial_id, str) else None
        recorded = saved.get("language", "en")
        if not args.lang and isinstance(recorded, str) and recorded.isascii() and recorded.isalpha():
            language = recorded
        # the site's trials are found where the screening found them, unless told otherwise
        rules_dirs = args.rules_dir or list(store.remembered_rules_dirs(saved))
        trial, dialog, portfolio = _load(ids, False, rules_dirs, args.lang or str(recorded))
        session = store.load(Path(path), trial)
        if getattr(args, "investigator", None):  # who signs the letters still to come
            session.investigator = args.investigator
        _check_audit_options(args, dialog, kept_trace=bool(session.traces),
                             operator=session.operator)
    except store.SessionError as exc:
        return _fail(console, exc.in_language(language))
    except (ScreenerError, OSError, ValueError, AttributeError) as exc:
        return _fail(console, exc if isinstance(exc, ScreenerError) else f"{path}: {exc}")
    reader = _reader(stdin, console, dialog)
    console.print(render.note(dialog.message("title", trial=trial.id, title=trial.title)))
    if session.trial_hash != trial.content_hash:
        console.print(render.note(dialog.message("rules_changed")))
        session.trial_hash = trial.content_hash
    console.print(render.note(dialog.message("resumed", candidate=session.candidate_id or "—",
                                             count=len(session.answers))))
    reopening = session.status == "finished"
    pending = session.pending  # undetermined: goes on with the questions still open
    if reopening and not pending and session.traces and not args.trace and observer is None:
        return _fail(console, dialog.tr(
            "The trace of this screening, {path}, is sealed with its decision. To reopen the "
            "screening, record it in a new trace: screener resume {id} --trace NEW.trace.jsonl",
            path=session.traces[0].path, id=str(session.path)))
    reason = ""
    if pending:
        reason = dialog.tr("to answer what was missing")
        session.reopen(reason)  # saved with the first answer, once its new traces exist
        session.ask_unknowns_again()
        console.print(render.note(dialog.tr(
            "This screening is pending: the questions still open are asked first.")))
    elif reopening:
        try:
            reason = _ask_reopen_reason(reader, console, dialog, session)
        except (EOFError, KeyboardInterrupt):
            reason = ""
        if not reason:
            console.print(render.note(dialog.tr("Not reopened: the screening stays finished.")))
            return EXIT_SAVED
        session.reopen(reason)
        store.save(session)
    continued = observer is None and not args.trace and bool(session.traces) and not pending
    from screener.audit.trace import TraceError
    try:
        if pending and observer is None and not args.trace and session.traces:
            # its traces are sealed with the undetermined decision: new ones, each linked
            observer = traces.pending_observer(session, trial, portfolio, dialog,
                                               getattr(args, "signing", None),
                                               site_zone(getattr(args, "tz", None)))
            console.print(render.note(dialog.tr(
                "The screening goes on in a new trace, linked to the earlier one: {path}.",
                path=", ".join(str(kept.trace_path) for kept in _trace_observers(observer)))))
        elif continued:
            observer = traces.continued_observer(session, trial, portfolio,
                                                 args.operator or session.operator,
                                                 getattr(args, "signing", None),
                                                 site_zone(getattr(args, "tz", None)))
            console.print(render.note(dialog.tr("The trace goes on in {path}.", path=", ".join(
                kept.path for kept in session.traces))))
        else:
            observer = observer or _audit_observer(args, trial, dialog, session.candidate_id,
                                                   portfolio, session)
    except TraceError as exc:
        return _fail(console, traces.refusal(dialog, exc, session) if continued else exc)
    except (ScreenerError, OSError) as exc:
        return _fail(console, exc)
    try:
        try:
            flow = _dialog(trial, dialog, reader, console, session, observer, portfolio)
        except ConflictError as exc:
            return _fail(console, render.conflict(dialog, exc))
        if not continued:
            _replay(trial, session, observer)
            resume = getattr(observer, "resume", None)
            if callable(resume):  # a new trace: who goes on, and why it was reopened
                resume(args.operator or session.operator, reason or None)
        return _run(flow)
    finally:
        _close(observer)


def _trace_observers(observer: Observer | None) -> list[Any]:
    """The trace writers among `observer` (one, or one per trial), in trial order."""
    from screener.audit.artifacts import TraceObserver

    members = list(observer.observers.values()) if isinstance(observer, SplitObserver) else [observer]
    return [member for member in members if isinstance(member, TraceObserver)]


def _close(observer: Observer | None) -> None:
    """Close the trace files when the dialog stops; without a decision they stay unsealed."""
    close = getattr(observer, "close", None)
    if callable(close):
        close()


def _run(flow: Dialog) -> int:
    flow.run()
    finished = flow.session.status == "finished"
    _written(flow, finished)
    return EXIT_DECIDED if finished else EXIT_SAVED


def _written(flow: Dialog, finished: bool) -> None:
    """Say which traces and letters the screening wrote, at its end; or, paused, where its
    trace goes on."""
    for kept in _trace_observers(flow.observer):
        if finished and kept.writer.sealed:
            flow.console.print(render.note(flow.dialog.tr(
                "Trace written: {path} (check it with: screener verify {path})",
                path=str(kept.trace_path))))
            if kept.letter_path is not None and kept.letter_path.exists():
                flow.console.print(render.note(flow.dialog.tr("Letter written: {path}",
                                                              path=str(kept.letter_path))))
        elif not finished:
            flow.console.print(render.note(flow.dialog.tr(
                "Trace so far: {path} (sealed when the screening is finished)",
                path=str(kept.trace_path))))


def _dialog(trial: Trial, dialog: DialogSpec, reader: Reader, console: Console,
            session: store.Session, observer: Observer | None, portfolio: Portfolio | None = None) -> Dialog:
    save = traces.saver(observer, trial.id)
    if portfolio is not None:
        return PortfolioDialog(trial, portfolio, dialog, reader, console, session,
                               save=save, observer=observer, today=dt.date.today())
    return Dialog(trial, Screener(trial), dialog, reader, console, session,
                  save=save, observer=observer, today=dt.date.today())


def _replay(trial: Trial, session: store.Session, observer: Observer | None) -> None:
    """Tell a new observer what the session already holds, in the order it happened, each
    answer and correction with the time it was given."""
    if observer is None:
        return
    for event in session.history:
        if "fact" not in event:  # e.g. a reopening
            continue
        spec = trial.facts[event["fact"]]
        when = _when(event.get("time"))
        if event["event"] == "answer":
            observer.fact(spec.name, coerce(spec, event["value"]), event["source"], **when)
        elif event["event"] == "superseded":
            observer.correction(spec.name, coerce(spec, event["old"]), None, event["reason"], **when)
        else:
            observer.correction(spec.name, coerce(spec, event["old"]), coerce(spec, event["new"]),
                                event["reason"], **when)


def _when(text: Any) -> dict[str, dt.datetime]:
    """`{"at": time}` for an event time the session recorded, or nothing when it has none."""
    try:
        moment = dt.datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        moment = None
    return {"at": moment} if moment is not None and moment.tzinfo is not None else {}


def _ask_reopen_reason(reader: Reader, console: Console, dialog: DialogSpec, session: store.Session) -> str:
    decision = dialog.message(f"decision_{session.decision}") if session.decision else "—"
    console.print(Text.assemble(
        "\n", (dialog.tr("This screening is finished ({decision}). Why reopen it?", decision=decision), "bold"),
        "\n", (dialog.tr("the reason is kept in its record; Enter alone leaves it closed"), "dim")))
    return reader.read("> ", [], [], lambda _line: None).strip()


def _ask_candidate(reader: Reader, console: Console, dialog: DialogSpec) -> str:
    console.print(Text.assemble("\n", (dialog.message("candidate_question"), "bold"), "\n",
                                (dialog.message("candidate_hint"), "dim")))
    return reader.read("> ", [], [], lambda _line: None).strip()


def _iso_date(text: str) -> Any:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


class _Record:
    """What patient records pre-fill: per fact, the session's and the trace's source."""

    def __init__(self) -> None:
        self.sources: dict[str, tuple[str, Any]] = {}
        self.notes: list[str] = []


def _prefill_sources(paths: list[Path], trial: Trial, dialog: DialogSpec, args: argparse.Namespace
                     ) -> tuple[dict[str, Any], dict[str, Path], _Record]:
    """The answers of every --answers file, which file gave each, and what came from a
    patient record. A fact two files give differently is refused (RulesError)."""
    from screener.sources.fhir import is_fhir

    given: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    record = _Record()
    ordered = sorted(paths, key=lambda p: is_fhir(str(p)))  # answers files first: they may anchor windows
    for path in ordered:
        if is_fhir(str(path)):
            found, sources = _read_record(path, trial, dialog, args, given, record)
        else:
            found, sources = _read_answers(path, dialog), {}
        for fact, value in found.items():
            if fact in given and given[fact] != value and not _same(trial, fact, given[fact], value):
                raise RulesError([_problem(str(path), "conflict", dialog.tr(
                    "{fact}: {file} gives another value than {other}", fact=fact, file=str(path),
                    other=str(origin[fact])))])
            given.setdefault(fact, value)
            origin.setdefault(fact, path)
            if fact in sources:
                record.sources.setdefault(fact, sources[fact])
    return given, origin, record


def _same(trial: Trial, fact: str, a: Any, b: Any) -> bool:
    spec = trial.facts.get(fact)
    try:
        return spec is not None and coerce(spec, a) == coerce(spec, b)
    except ScreenerError:
        return False


def _read_record(path: Path, trial: Trial, dialog: DialogSpec, args: argparse.Namespace,
                 known: dict[str, Any], record: _Record) -> tuple[dict[str, Any], dict[str, tuple[str, Any]]]:
    """The facts a FHIR Bundle of one patient gives, by the mappings; values the record holds
    but cannot give (a code no mapping maps, a unit that does not convert) are left to ask,
    each with a note. Raises ScreenerError when the file is no one patient's record."""
    from screener.sources.extract import extract
    from screener.sources.fhir import FhirSource, PatientRecord
    from screener.sources.mapping import check_against, load_mappings
    from screener.sources.merge import trace_source

    mappings = load_mappings(getattr(args, "rules_dir", None) or [])
    problems = check_against(mappings, dict(trial.facts))
    if problems:
        raise RulesError(problems)
    found = list(FhirSource(str(path), getattr(args, "id_system", None)).patients())
    patients = [p for p in found if isinstance(p, PatientRecord)]
    if len(found) != 1 or len(patients) != 1:
        broken = "; ".join(str(p) for p in found if not isinstance(p, PatientRecord))
        raise ScreenerError(dialog.tr("{file}: not the record of one patient ({count} patients){problems}",
                                      file=str(path), count=len(patients),
                                      problems=f": {broken}" if broken else ""))
    (patient,) = patients
    read = extract(patient, mappings, dict(trial.facts), known, getattr(args, "as_of", None))
    for problem in (*patient.problems, *read.errors):
        fact, _, rest = problem.partition(": ")
        if fact in trial.facts and rest:  # the fact by its label, as the questions name it
            problem = f"{dialog.label(fact)}: {rest}"
        record.notes.append(dialog.tr("Not taken from the record, to be asked: {problem}", problem=problem))
    if read.unread:
        record.notes.append(dialog.tr("Not taken from the record without a screening date (--as-of DATE): "
                                      "{facts}", facts=", ".join(dialog.label(f) for f in read.unread)))
    values = {trial.id_fact: patient.key, **read.fields}
    sources = {}
    for fact, provenance in read.sources.items():
        traced = trace_source(provenance, "answers")
        resource = getattr(traced, "column", "") or ""
        sources[fact] = (f"record|{resource}|{getattr(traced, 'note', '')}", traced)
    return values, sources


def _read_answers(path: Path, dialog: DialogSpec) -> dict[str, Any]:
    """A mapping fact -> value from a YAML or JSON file, read with YAML 1.2 core types.
    Raises RulesError, its problems worded in the dialog's language."""
    document = load_yaml(path)
    if document is None:
        return {}
    if not isinstance(document, PosDict):
        raise RulesError([_problem(str(path), "wrong-type",
                                   dialog.tr("the answers file must be a mapping fact: value"))])
    for key, value in document.items():
        if isinstance(value, (dict, list)):
            span = document.value_spans[key]
            raise RulesError([_problem(str(path), "wrong-type",
                                       dialog.tr("{fact}: expected a single value", fact=key),
                                       span.line, span.column)])
    return dict(document)


def _problem(path: str, code: str, message: str, line: int = 1, column: int = 1) -> RuleProblem:
    return RuleProblem(path, line, column, code, message)


def _reader(stdin: IO[str], console: Console, dialog: DialogSpec) -> Reader:
    if stdin.isatty():
        change = [w for w, c in dialog.vocabulary.commands.items() if c == "change"]
        return PromptReader(change)
    return LineReader(stdin, console)


def _console(stdout: IO[str] | None) -> Console:
    """The dialog's console. Answers, ids and file names go on screen: no markup is read and
    control characters are shown escaped (screener.safe)."""
    return safe_console(stdout or sys.stdout, soft_wrap=True)


def _fail(console: Console, problem: object) -> int:
    err = safe_console(stderr=True) if console.file is sys.stdout else console
    err.print(f"screener: {problem}", markup=False, soft_wrap=True)  # never cut mid-word
    return EXIT_USAGE
