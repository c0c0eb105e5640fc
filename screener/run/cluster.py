"""Screening on a Dask cluster: `screener batch|match --cluster ADDRESS`.

ADDRESS is `tcp://host:port` (or `tls://host:port`) of a running Dask scheduler, or `local:N`
for a cluster of N worker processes started on this machine for the run (loopback only, no
dashboard). The same code runs in both cases.

- Workers share no files with the client: every task carries the rules it needs, as the rules
  file's content and hash (`RulesPack`), and a worker process builds each trial's
  durable-rules rulesets once, keyed by that hash (`_screener_for`). durable-rules keeps
  C-level state per process and is not safe from two threads: workers run one thread
  (`dask worker --nthreads 1`), and a lock keeps one chunk at a time in a process even if not.
- With a screening store, the client looks each candidate and trial up (the store is one
  transaction on the client) and sends only what changed; the workers' records are stored.
- Rows go out in chunks (a candidate is never split), at most a few chunks per worker in
  flight; results come back as they finish and are put back in input order (a reorder buffer
  bounded by the same window), so the client's memory stays flat however large the input and
  the records are byte for byte those of `--jobs 1`.
- A worker that dies loses nothing: the scheduler runs its chunks again elsewhere, and each
  chunk's result is taken once, by its place in the input. A scheduler that goes away ends
  the run with `ClusterLost` (the command line: exit 3, no results file kept).

Dask is an optional dependency (`pip install 'screener[dask]'`): nothing here imports it
until a run asks for a cluster.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from screener.errors import ScreenerError

if TYPE_CHECKING:
    from screener.run.batch import Summary
    from screener.engine import Screener
    from screener.model import FactValue, Trial
    from screener.run.portfolio import Tally
    from screener.sources.readers import Row
    from screener.run.store import Store

# How long the client waits for a first worker to join the scheduler. How long it waits for
# the scheduler itself is Dask's `distributed.comm.timeouts.connect` (30 s unless set, e.g.
# DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s).
WORKER_WAIT_SECONDS = 60.0
# A run of one trial sends this many rows in a task, a run of several trials fewer (each row
# is screened once per trial): about a quarter of a second of work per task.
BATCH_CHUNK_ROWS = 256
PORTFOLIO_CHUNK_ROWS = 96
CHUNKS_PER_WORKER = 3  # in flight (running, queued or waiting to be written) per worker
LOW_LEVEL_LOG_LENGTH = 16  # Dask's debugging logs of recent messages, in the client's process

# For tests only: seconds a worker waits after screening each chunk (read on the worker), and
# rows per chunk (read by the client), so that a test can kill a worker or the scheduler while
# chunks are certainly still running, with a few hundred candidates.
TEST_DELAY_VARIABLE = "SCREENER_TEST_CLUSTER_CHUNK_DELAY"
TEST_ROWS_VARIABLE = "SCREENER_TEST_CLUSTER_CHUNK_ROWS"

_LOCAL = re.compile(r"local:([0-9]{1,4})\Z")
_REMOTE = re.compile(r"(tcp|tls)://[^\s/]+:[0-9]{1,5}\Z")


class ClusterError(ScreenerError):
    """`--cluster` cannot be used: no Dask installed, a bad address, no scheduler there, or
    workers that cannot screen (another screener version, several threads)."""

    code = "cluster"


class ClusterLost(Exception):
    """The cluster went away during the run (the scheduler, or every try of a chunk)."""


@dataclass(frozen=True)
class RulesPack:
    """A trial's rules as a task carries them: the file's bytes (zlib-compressed: a quarter
    of the size, in every task; a worker unpacks them once), their sha256, and the name its
    problems are reported under."""

    packed: bytes
    content_hash: str
    shown: str


def pack_rules(trial: Trial, path: str | os.PathLike[str]) -> RulesPack:
    """The rules file of `trial` as content and hash; refuses a file that changed since the
    trial was loaded from it (the workers would screen by other rules than the client's)."""
    with open(path, "rb") as stream:
        content = stream.read()
    digest = hashlib.sha256(content).hexdigest()
    if digest != trial.content_hash:
        raise ClusterError(f"the rules file {trial.path} changed while the run started; run it again")
    return RulesPack(zlib.compress(content, 6), digest, trial.path)


def parse_address(text: str) -> tuple[str, Any]:
    """`("local", N)` or `("remote", address)`; raises ClusterError for anything else."""
    if (local := _LOCAL.match(text)) is not None:
        workers = int(local.group(1))
        if not 1 <= workers <= 256:
            raise ClusterError(f"--cluster {text}: the number of local workers must be 1 to 256")
        return "local", workers
    if _REMOTE.match(text):
        return "remote", text
    raise ClusterError(f"--cluster {text!r}: give the scheduler's address as tcp://HOST:PORT (or "
                       "tls://HOST:PORT), or local:N for N worker processes on this machine")


def require_dask() -> None:
    """Raise ClusterError unless Dask's distributed scheduler can be imported."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise ClusterError("--cluster needs Dask, which is not installed: pip install 'screener[dask]'"
                           ) from None


# --- the client side ------------------------------------------------------------------------

@contextlib.contextmanager
def connect(address: str) -> Iterator[Any]:
    """A Dask client for `address` (see `parse_address`), its workers checked; closed (and a
    local cluster stopped) on the way out."""
    require_dask()
    kind, where = parse_address(address)
    _quiet_dask()
    import dask
    import distributed

    # Dask keeps each connection's last messages under 1 MB for debugging, 1,000 by default:
    # with chunks of rows of a few hundred kB that is hundreds of MB, growing with the input
    # until the log is full. A few are enough (a local cluster's scheduler reads it too).
    dask.config.set({"distributed.admin.low-level-log-length": LOW_LEVEL_LOG_LENGTH})

    with contextlib.ExitStack() as stack:
        if kind == "local":
            cluster = stack.enter_context(_local_cluster(where))
            client = stack.enter_context(distributed.Client(cluster))
        else:
            if where.startswith("tls://"):
                _check_tls(where)
            try:
                client = distributed.Client(where)
            except (OSError, TimeoutError) as exc:
                raise ClusterError(f"--cluster {where}: no Dask scheduler answers there "
                                   f"({_reason(exc)})") from None
            stack.callback(_close, client)
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
            except (OSError, TimeoutError):
                raise ClusterError(f"--cluster {where}: no worker joined the scheduler within "
                                   f"{WORKER_WAIT_SECONDS:.0f} seconds") from None
        check_workers(client)
        yield client


def _check_tls(where: str) -> None:
    """Refuse a tls:// address without the client's certificates in Dask's configuration."""
    import ssl

    from distributed.security import Security

    try:
        context = Security().get_connection_args("client").get("ssl_context")
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise ClusterError(f"--cluster {where}: Dask's TLS settings cannot be used ({_reason(exc)})") from None
    if context is None:
        raise ClusterError(f"--cluster {where}: no TLS certificates are set for Dask: give "
                           "distributed.comm.tls.ca-file, distributed.comm.tls.client.cert and "
                           "distributed.comm.tls.client.key (docs/cluster.md)")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextlib.contextmanager
def _local_cluster(workers: int) -> Iterator[Any]:
    import logging
    import shutil
    import tempfile

    import dask
    import distributed

    # the workers' scratch folder (Dask's default is a shared /tmp/dask-scratch-space, left
    # behind): a private one of the run's own, removed with the cluster
    scratch = tempfile.mkdtemp(prefix="screener-dask-")
    try:
        with dask.config.set({"temporary-directory": scratch}):
            cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, silence_logs=logging.CRITICAL, scheduler_port=0,
                local_directory=scratch,
            )
            try:
                yield cluster
            finally:
                with contextlib.suppress(Exception):
                    cluster.close(timeout=10)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _close(client: Any) -> None:
    with contextlib.suppress(Exception):
        client.close(timeout=5)


def _quiet_dask() -> None:
    """Dask's own log lines (a worker lost, a connection retried) are for its operators, not
    for the person running the screener: the run reports what matters itself."""
    import logging
    import warnings

    import distributed  # noqa: F401 - it sets its loggers' levels when imported

    families = ("distributed", "dask", "tornado")
    for name in [*families, *logging.root.manager.loggerDict]:
        if name.partition(".")[0] in families:
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    for name in families:
        # e.g. "Port 8787 is already in use": a local cluster's internal web server, on loopback,
        # moves to a free port by itself
        warnings.filterwarnings("ignore", module=rf"{name}(\.|$)")


def _worker_facts() -> Callable[[], dict[str, Any]]:
    """A function that tells what a worker runs; built here so that it travels by value and
    also answers on a worker where screener cannot be imported."""
    def facts() -> dict[str, Any]:
        try:
            import screener
            version = screener.__version__
        except ImportError:
            version = None
        try:
            from distributed import get_worker
            nthreads = get_worker().state.nthreads
        except Exception:  # noqa: BLE001 - an older Dask: the lock still keeps chunks apart
            nthreads = 1
        return {"version": version, "nthreads": nthreads}
    return facts


def check_workers(client: Any) -> None:
    """Refuse workers that run another screener version (or none), or several threads."""
    from screener import __version__

    try:
        answers = client.run(_worker_facts(), on_error="return")
    except Exception as exc:  # noqa: BLE001 - the scheduler went away already
        raise ClusterError(f"the Dask workers did not answer ({_reason(exc)})") from None
    for worker, facts in sorted(answers.items()):
        if isinstance(facts, BaseException) or not isinstance(facts, dict):
            raise ClusterError(f"the Dask worker {worker} did not answer ({_reason(facts)})")
        if facts["version"] is None:
            raise ClusterError(f"the Dask worker {worker} has no screener installed: install "
                               f"screener[dask] {__version__} on every worker")
        if facts["version"] != __version__:
            raise ClusterError(f"the Dask worker {worker} runs screener {facts['version']}, this "
                               f"client {__version__}: install the same version on every worker")
        if facts["nthreads"] != 1:
            raise ClusterError(f"the Dask worker {worker} runs {facts['nthreads']} threads: start "
                               "each worker with --nthreads 1 (one screening engine per process)")


def workers_of(client: Any) -> int:
    try:
        return max(1, len(client.scheduler_info().get("workers", {})))
    except Exception:  # noqa: BLE001 - the run itself will say the scheduler went away
        return 1


def chunk_results(client: Any, chunks: Iterable[tuple[list[Any], Any]], work: Callable[..., Any],
                  *args: Any) -> Iterator[tuple[list[Any], Any]]:
    """`work(*args, items)` on the cluster for each `(items, state)` of `chunks`; yields
    `(result, state)` in input order (an empty `items` is not sent: its result is []). At most
    `CHUNKS_PER_WORKER` chunks per worker are taken from `chunks` and not yet yielded, so the
    client holds a bounded number of rows and results whatever the input's size. Raises
    ClusterLost when the scheduler goes away or a chunk cannot be screened."""
    from distributed import as_completed

    window = CHUNKS_PER_WORKER * workers_of(client)
    run = uuid.uuid4().hex[:12]  # task keys of this run only, whoever else uses the scheduler
    finished = as_completed()
    place: dict[Any, int] = {}  # future -> its chunk's place in the input
    states: dict[int, Any] = {}
    ready: dict[int, list[Any]] = {}  # results that arrived before an earlier chunk's
    submitted = taken = 0
    source = iter(chunks)
    more = True
    try:
        while True:
            while more and submitted - taken < window:
                chunk = next(source, None)
                if chunk is None:
                    more = False
                    break
                items, states[submitted] = chunk
                if items:
                    future = _submit(client, work, args, items, f"screener-{run}-{submitted}")
                    place[future] = submitted
                    finished.add(future)
                else:
                    ready[submitted] = []
                submitted += 1
            while taken in ready:
                yield ready.pop(taken), states.pop(taken)
                taken += 1
            if taken == submitted and not more:
                break
            if not place:
                # every chunk sent has come back and been yielded (the first one last: it was
                # on a worker that died and was screened again): send more before waiting
                continue
            future = next(finished, None)
            if future is None:
                # the iterator says nothing is left while chunks are still out: the chunks not
                # yet returned are followed again; a finished one comes back at once
                finished = as_completed(list(place))
                continue
            ready[place.pop(future)] = _result(future)
            del future  # its result is released on the cluster
    finally:
        for future in list(place):
            with contextlib.suppress(Exception):
                future.cancel()
        finished.clear()


def _submit(client: Any, work: Callable[..., Any], args: tuple[Any, ...], chunk: list[Row], key: str) -> Any:
    try:
        return client.submit(work, *args, chunk, key=key, pure=False)
    except Exception as exc:  # noqa: BLE001 - a closed client: the scheduler went away
        raise ClusterLost(f"the Dask scheduler went away ({_reason(exc)})") from None


def _result(future: Any) -> Any:
    """The chunk's result; ClusterLost when the chunk was lost with the scheduler or failed on
    every worker it was tried on."""
    from distributed.client import FutureCancelledError

    try:
        status = future.status
        if status == "cancelled":
            raise ClusterLost("the Dask scheduler went away")
        if status == "error":
            exc = future.exception()
            if type(exc).__name__ == "KilledWorker":
                raise ClusterLost("the Dask workers screening one chunk of candidates died each "
                                  "time it was tried")
            if type(exc).__name__ in ("NoWorkerError", "NoValidWorkerError"):  # its no-workers-timeout
                raise ClusterLost("no Dask worker was left to screen the candidates")
            raise exc
        return future.result()
    except (FutureCancelledError, OSError) as exc:
        raise ClusterLost(f"the Dask scheduler went away ({_reason(exc)})") from None


# --- what runs on the workers --------------------------------------------------------------

_screeners: dict[str, tuple[Trial, Screener]] = {}
_lock = threading.Lock()  # durable-rules is used from one thread at a time in a process


def _screener_for(pack: RulesPack) -> tuple[Trial, Screener]:
    """The trial and its screener for these rules, built once per worker process."""
    found = _screeners.get(pack.content_hash)
    if found is None:
        from screener.engine import Screener
        from screener.errors import RuleProblem
        from screener.rules.check import build_trial
        from screener.rules.read import load_yaml_text

        content = zlib.decompress(pack.packed)
        if hashlib.sha256(content).hexdigest() != pack.content_hash:
            raise ValueError(f"the rules of {pack.shown} arrived damaged")
        problems: list[RuleProblem] = []
        document = load_yaml_text(content.decode("utf-8-sig"), pack.shown, problems)
        trial = build_trial(document, pack.shown, pack.content_hash, problems)
        # a cluster writes no trace: no firings are kept (as a batch without --traces)
        found = _screeners[pack.content_hash] = (trial, Screener(trial, firings=False))
    return found


def _test_knob(name: str) -> float:
    """A test knob's value (positive, at most an hour), or 0 when it is unset or not one."""
    try:
        value = float(os.environ.get(name) or 0)
    except ValueError:
        return 0.0
    return value if 0 < value <= 3600 else 0.0


def _test_delay() -> None:
    if delay := _test_knob(TEST_DELAY_VARIABLE):
        time.sleep(delay)


def screen_chunk(packs: Sequence[RulesPack], context: Mapping[str, FactValue], match: bool,
                 items: list[tuple[Row, Sequence[int] | None]]) -> list[list[dict[str, Any]]]:
    """Per row, its records for the trials of `packs` it names (None: every one) in that order:
    batch records, or with `match` the match records `portfolio.rank` reads."""
    from screener.run.batch import SharedReads, screen_row
    from screener.run.portfolio import with_trial
    from screener.prospects import prospect_fields

    out = []
    with _lock:
        built = [_screener_for(pack) for pack in packs]
        shared = SharedReads(trial for trial, _ in built)
        for row, which in items:
            records = []
            shared.next_row()  # a fact several trials declare alike is read once
            for trial, screener in (built if which is None else [built[i] for i in which]):
                screened = screen_row(trial, screener, row, context, shared=shared)
                record = screened.record
                if match:  # the criteria's outcomes, which only the worker has
                    record = with_trial(record, trial.id)
                    record.update(prospect_fields(trial, record["decision"], screened.result))
                records.append(record)
            out.append(records)
    _test_delay()
    return out


# --- the runs (on the client) ------------------------------------------------------------

def _prepared(rows: Iterable[Row], chunk_size: int, trials: Sequence[Trial], unknown: set[str],
              context: Mapping[str, FactValue], store: Store | None) -> Iterator[tuple[list[Any], Any]]:
    """Chunks of `(row, trials to screen)` for the workers, each with what the client keeps
    to complete it: per row, per trial, the stored record (None: screened by a worker) and its
    store key. Without a store every row goes for every trial."""
    known = frozenset(name for trial in trials for name in trial.facts)
    from screener.run.batch import chunks, store_key

    size = int(_test_knob(TEST_ROWS_VARIABLE)) or chunk_size
    for chunk in chunks(rows, size):
        items: list[tuple[Row, Sequence[int] | None]] = []
        kept = []
        for row in chunk:
            unknown.update(row.fields.keys() - known)  # fields that are facts of none of the trials
            if store is None:
                items.append((row, None))
                continue
            stored, keys = [], []
            for trial in trials:
                key = store_key(trial, row, context, store)[0]
                stored.append(store.lookup(*key) if key is not None else None)
                keys.append(key)
            if (which := [i for i, record in enumerate(stored) if record is None]):
                items.append((row, which))
            kept.append((stored, keys, bool(which)))
        yield items, (kept if store is not None else None)


def _records(client: Any, chosen: Sequence[tuple[Trial, str | os.PathLike[str]]], rows: Iterable[Row],
             unknown: set[str], context: Mapping[str, FactValue], store: Store | None, match: bool,
             chunk_size: int) -> Iterator[tuple[Trial, dict[str, Any]]]:
    """Each row's record for each trial, in input then trial order."""
    packs = [pack_rules(trial, path) for trial, path in chosen]
    trials = [trial for trial, _ in chosen]
    chunks = _prepared(rows, chunk_size, trials, unknown, context, store)
    for screened, kept in chunk_results(client, chunks, screen_chunk, packs, dict(context), match):
        if kept is None:
            for records in screened:
                yield from zip(trials, records)
            continue
        from_workers = iter(screened)
        for stored, keys, sent in kept:
            fresh = iter(next(from_workers) if sent else ())
            for trial, record, key in zip(trials, stored, keys):
                if record is None:
                    record = next(fresh)
                    if key is not None and store is not None:
                        store.remember(*key, record)
                yield trial, record


def screen_rows_cluster(client: Any, trial: Trial, rules_path: str | os.PathLike[str], rows: Iterable[Row],
                        summary: Summary, context: Mapping[str, FactValue] | None = None,
                        store: Store | None = None) -> Iterator[dict[str, Any]]:
    """As `batch.screen_rows` (without traces), on the cluster; records in input order,
    reusing the `store`'s records of unchanged candidates when there is one."""
    for _, record in _records(client, [(trial, rules_path)], rows, summary.unknown_fields, context or {},
                              store, False, BATCH_CHUNK_ROWS):
        summary.add(record)
        yield record


def screen_portfolio_cluster(client: Any, chosen: Sequence[tuple[Trial, str | os.PathLike[str]]],
                             rows: Iterable[Row], tally: Tally, match: bool = False,
                             store: Store | None = None) -> Iterator[dict[str, Any]]:
    """As `portfolio.screen_portfolio` (without traces), on the cluster; records in input
    order, then trial order (`match`: with the fields `rank` reads)."""
    from screener.run.portfolio import with_trial

    for trial, record in _records(client, chosen, rows, tally.overall.unknown_fields, {}, store, match,
                                  PORTFOLIO_CHUNK_ROWS):
        if not match:
            record = with_trial(record, trial.id)
        tally.add(record, None)
        yield record
