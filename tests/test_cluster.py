"""`screener batch|match --cluster`: a real Dask scheduler and worker processes on this machine.

Each cluster here is a `dask scheduler` and `dask worker` processes (loopback, one thread each,
no dashboard, random ports read from a scheduler file), ended by the fixture whatever happens.
The runs are compared byte for byte with `--jobs 1` on realistic candidates of every shipped
trial. For the fault tests the workers wait a little after each chunk and chunks are small
(the test-only knobs of screener.run.cluster), and the test kills a worker or the scheduler once
it sees, through the scheduler, that the run's chunks are being screened.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from screener.run import cluster as cluster_module

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks")]

from candidates import REALISTIC, as_csv_cell, generator_for  # noqa: E402

COUNT = 150  # candidates: several chunks of every kind of run
PYTHON = sys.executable


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop(cluster_module.TEST_DELAY_VARIABLE, None)
    env.pop(cluster_module.TEST_ROWS_VARIABLE, None)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def candidates_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Realistic candidates carrying the facts of every shipped trial."""
    from screener.trials import catalog

    rules = [t.rules for t in catalog().trials if t.origin == "shipped"]
    assert len(rules) >= 3
    generators = [generator_for(r) for r in rules]
    header = list(dict.fromkeys(["candidate_id", *(c for g in generators for c in g.columns)]))
    path = tmp_path_factory.mktemp("cluster") / "candidates.csv"
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(header)
        for parts in zip(*(g.candidates(22, COUNT, REALISTIC) for g in generators)):
            fields: dict[str, Any] = {}
            for cand in parts:
                for name, value in cand.fields.items():
                    fields.setdefault(name, value)
            writer.writerow([as_csv_cell(fields.get(name)) for name in header])
    return path


def screener(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "screener", *args], capture_output=True, text=True,
                          env=env or _env(), timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def expected(candidates_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, int, str]]:
    """What `--jobs 1` writes for each kind of run: (records, exit status, summary)."""
    folder = tmp_path_factory.mktemp("expected")
    out = {}
    for name, command in RUNS.items():
        result = folder / f"{name}.jsonl"
        done = screener(*command(candidates_csv), "-o", str(result))
        assert done.returncode in (0, 1), done.stderr
        out[name] = (result.read_bytes(), done.returncode, _summary(done.stderr, result))
    return out


RUNS = {
    "all-trials": lambda csv_path: ["batch", str(csv_path), "--all-trials"],
    "one-trial": lambda csv_path: ["batch", str(csv_path), "--trial", "NCT06898385"],
    "match": lambda csv_path: ["match", str(csv_path)],
}


def _summary(stderr: str, output: Path) -> str:
    """Standard error without the output file's name (the one line that names it)."""
    return stderr.replace(str(output), "OUTPUT")


class Cluster:
    """A scheduler and worker processes; `client` is the test's own look at the scheduler."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.processes: list[subprocess.Popen] = []
        self.client: Any = None

    def start(self, workers: int, preload: str | None = None, scheduler_env: dict[str, str] | None = None,
              **worker_env: str) -> None:
        self.scheduler = self._start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                     "--scheduler-file", str(self.scheduler_file), env=_env(**(scheduler_env or {})))
        self.address = self._address()
        self.workers = [self._start("worker", "--scheduler-file", str(self.scheduler_file), "--host",
                                    "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                    *(["--preload", preload] if preload else []), env=_env(**worker_env))
                        for _ in range(workers)]
        from distributed import Client

        self.client = Client(self.address, timeout=30)
        self.client.wait_for_workers(workers, timeout=60)

    def _start(self, role: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        with (self.folder / f"{role}-{len(self.processes)}.log").open("wb") as log:
            process = subprocess.Popen([PYTHON, "-m", "dask", role, *args], stdout=log, stderr=log,
                                       stdin=subprocess.DEVNULL, env=env or _env(), start_new_session=True)
        self.processes.append(process)
        return process

    def _address(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.scheduler.poll() is None, "the scheduler ended at start"
            with contextlib.suppress(OSError, ValueError, KeyError):
                return str(json.loads(self.scheduler_file.read_text())["address"])
            time.sleep(0.05)
        raise AssertionError("the scheduler wrote no address")

    def worker_pids(self) -> dict[str, int]:
        return self.client.run(os.getpid)

    def wait_for_screening(self, timeout: float = 60) -> str:
        """The address of a worker screening one of the run's chunks now."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for worker, keys in self.client.processing().items():
                if any(str(key).startswith("screener-") for key in keys):
                    return worker
            time.sleep(0.02)
        raise AssertionError("no chunk was screened")

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close(timeout=5)
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=30)


@contextlib.contextmanager
def running(folder: Path, workers: int = 2, preload: str | None = None, scheduler_env: dict[str, str] | None = None,
            **worker_env: str) -> Iterator[Cluster]:
    made = Cluster(folder)
    try:
        made.start(workers, preload, scheduler_env, **worker_env)
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def tcp_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running(tmp_path_factory.mktemp("tcp")) as made:
        yield made


def _same_as_jobs_1(name: str, done: subprocess.CompletedProcess, result: Path,
                    expected: dict[str, tuple[bytes, int, str]]) -> None:
    records, status, summary = expected[name]
    assert done.returncode == status, done.stderr
    assert result.read_bytes() == records
    assert _summary(done.stderr, result) == summary
    assert (result.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_run_on_a_dask_cluster_writes_what_jobs_1_writes(name, tcp_cluster, candidates_csv, expected, tmp_path):
    result = tmp_path / "out.jsonl"
    done = screener(*RUNS[name](candidates_csv), "-o", str(result), "--cluster", tcp_cluster.address)
    _same_as_jobs_1(name, done, result, expected)


def test_a_local_cluster_started_for_the_run_writes_what_jobs_1_writes(candidates_csv, expected, tmp_path):
    result, temporary = tmp_path / "out.jsonl", tmp_path / "tmp"
    temporary.mkdir()
    done = screener(*RUNS["all-trials"](candidates_csv), "-o", str(result), "--cluster", "local:2",
                    env=_env(TMPDIR=str(temporary)))
    _same_as_jobs_1("all-trials", done, result, expected)
    # the workers' scratch space goes with the cluster (Dask's default stays behind in /tmp)
    assert list(temporary.iterdir()) == []


SLOW = {cluster_module.TEST_DELAY_VARIABLE: "0.15"}
SMALL_CHUNKS = {cluster_module.TEST_ROWS_VARIABLE: "12"}


def _start_run(candidates_csv: Path, result: Path, address: str, name: str = "all-trials") -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-m", "screener", *RUNS[name](candidates_csv), "-o", str(result),
                             "--cluster", address], env=_env(**SMALL_CHUNKS), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(run: subprocess.Popen, timeout: float = 90) -> tuple[int, str]:
    try:
        _, stderr = run.communicate(timeout=timeout)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    return run.returncode, stderr


def test_a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(candidates_csv, expected, tmp_path):
    result = tmp_path / "out.jsonl"
    with running(tmp_path, **SLOW) as made:
        pids = made.worker_pids()
        run = _start_run(candidates_csv, result, made.address)
        try:
            os.kill(pids[made.wait_for_screening()], signal.SIGKILL)
        finally:
            status, stderr = _finish(run)
        assert len(made.client.scheduler_info()["workers"]) == 1  # the run went on without it
    records, want_status, summary = expected["all-trials"]
    assert status == want_status, stderr
    assert result.read_bytes() == records
    assert stderr.replace(str(result), "OUTPUT") == summary


def test_a_scheduler_that_goes_away_ends_the_run_with_exit_3_and_no_results(candidates_csv, tmp_path):
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    result = out_dir / "out.jsonl"
    with running(tmp_path, workers=1, **SLOW) as made:
        run = _start_run(candidates_csv, result, made.address)
        try:
            made.wait_for_screening()
            made.scheduler.kill()
        finally:
            status, stderr = _finish(run)
    assert status == 3, stderr
    assert "scheduler went away" in stderr and "out.jsonl is unchanged" in stderr
    assert "Traceback" not in stderr and "distributed" not in stderr
    assert list(out_dir.iterdir()) == []  # neither the results nor their unfinished .part file


def test_a_run_whose_last_worker_dies_ends_with_exit_3_when_the_scheduler_gives_up_waiting(candidates_csv, tmp_path):
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    result = out_dir / "out.jsonl"
    # a site sets how long its scheduler keeps work that no worker is left to do (Dask: forever)
    waiting = {"DASK_DISTRIBUTED__SCHEDULER__NO_WORKERS_TIMEOUT": "1s"}
    with running(tmp_path, workers=1, scheduler_env=waiting, **SLOW) as made:
        pids = made.worker_pids()
        run = _start_run(candidates_csv, result, made.address)
        try:
            os.kill(pids[made.wait_for_screening()], signal.SIGKILL)
        finally:
            status, stderr = _finish(run)
    assert status == 3, stderr
    assert "no Dask worker was left" in stderr and "out.jsonl is unchanged" in stderr
    assert "Traceback" not in stderr
    assert list(out_dir.iterdir()) == []


def test_workers_of_another_screener_version_are_refused(candidates_csv, tmp_path):
    preload = tmp_path / "other_version.py"
    preload.write_text("import screener\nscreener.__version__ = '0.0.1'\n")
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    # the preload changes the version the worker reports, as an older install would
    with running(tmp_path, workers=1, preload=str(preload)) as made:
        done = screener(*RUNS["one-trial"](candidates_csv), "-o", str(out_dir / "out.jsonl"),
                        "--cluster", made.address)
    assert done.returncode == 2, done.stderr
    assert "runs screener 0.0.1" in done.stderr and "same version on every worker" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("options, says", [
    (["--cluster", "127.0.0.1:8786"], "tcp://HOST:PORT"),
    (["--cluster", "local:0"], "local workers must be 1 to 256"),
    (["--cluster", "local:2", "--jobs", "2"], "--cluster goes without --jobs"),
    (["--cluster", "local:2", "--traces", "TRACES"], "--cluster goes without --traces"),
])
def test_cluster_options_that_cannot_work_are_refused_before_anything_runs(options, says, candidates_csv, tmp_path,
                                                                           capsys):
    from screener.cli import main

    options = [str(tmp_path / "traces") if o == "TRACES" else o for o in options]
    assert main(["batch", str(candidates_csv), "--all-trials", "-o", str(tmp_path / "out.jsonl"), *options]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "traces").exists()


def test_without_dask_installed_cluster_says_how_to_install_it(candidates_csv, tmp_path, capsys, monkeypatch):
    from screener.cli import main

    monkeypatch.setitem(sys.modules, "distributed", None)  # its import fails, as when it is not installed
    assert main(["match", str(candidates_csv), "--cluster", "local:2", "-o", str(tmp_path / "out.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'screener[dask]'" in err and "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()


def test_no_scheduler_at_the_address_is_a_clear_error(candidates_csv, tmp_path, monkeypatch):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = screener("batch", str(candidates_csv), "--trial", "NCT03862768", "-o", str(tmp_path / "out.jsonl"),
                    "--cluster", f"tcp://127.0.0.1:{port}",
                    env=_env(DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s"))
    assert done.returncode == 2, done.stderr
    assert f"tcp://127.0.0.1:{port}: no Dask scheduler answers there" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.jsonl").exists()


def _changed_copy(candidates_csv: Path, folder: Path, every: int = 10) -> Path:
    """The candidates with the ECOG of one in `every` changed."""
    path = folder / "changed.csv"
    with candidates_csv.open(encoding="utf-8", newline="") as source, \
            path.open("w", encoding="utf-8", newline="") as target:
        reader, writer = csv.reader(source), csv.writer(target, lineterminator="\n")
        header = next(reader)
        writer.writerow(header)
        column = header.index("ecog")
        for number, row in enumerate(reader):
            if number % every == 0:
                row[column] = "1" if row[column] != "1" else "2"
            writer.writerow(row)
    return path


def test_a_store_kept_by_a_run_on_one_machine_spares_the_cluster_what_did_not_change(
        tcp_cluster, candidates_csv, expected, tmp_path):
    store = tmp_path / "screening.db"
    first = screener(*RUNS["one-trial"](candidates_csv), "-o", str(tmp_path / "first.jsonl"), "--store", str(store))
    assert first.returncode == expected["one-trial"][1], first.stderr
    changed = _changed_copy(candidates_csv, tmp_path)
    full = screener(*RUNS["one-trial"](changed), "-o", str(tmp_path / "full.jsonl"))

    result = tmp_path / "out.jsonl"
    done = screener(*RUNS["one-trial"](changed), "-o", str(result), "--store", str(store),
                    "--cluster", tcp_cluster.address)
    assert done.returncode == full.returncode, done.stderr
    assert result.read_bytes() == (tmp_path / "full.jsonl").read_bytes()
    line = next(line for line in done.stderr.splitlines() if line.startswith("store:"))
    reused, screened = [int(word) for word in line.replace("(", " ").split() if word.isdigit()][:2]
    assert reused + screened == COUNT and 0 < screened < COUNT, line
    assert "with changed facts" in line

    again = screener(*RUNS["one-trial"](changed), "-o", str(result), "--store", str(store),
                     "--cluster", tcp_cluster.address)
    assert f"store: {COUNT} results reused, 0 screened" in again.stderr  # the cluster's results were kept
    assert result.read_bytes() == (tmp_path / "full.jsonl").read_bytes()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate (its own CA) and its key for 127.0.0.1, made for the test."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "screener-test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_a_tls_cluster_screens_with_the_certificates_of_dask_settings_and_is_refused_without(
        candidates_csv, expected, tmp_path):
    cert, key = _self_signed(tmp_path)
    tls = ["--tls-ca-file", str(cert), "--tls-cert", str(cert), "--tls-key", str(key)]
    made = Cluster(tmp_path)
    try:
        made.scheduler = made._start("scheduler", "--host", "127.0.0.1", "--protocol", "tls", "--port", "0",
                                     "--no-dashboard", "--scheduler-file", str(made.scheduler_file), *tls)
        address = made._address()
        made._start("worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
                    "--no-dashboard", *tls)
        assert address.startswith("tls://")

        result = tmp_path / "out.jsonl"
        refused = screener(*RUNS["one-trial"](candidates_csv), "-o", str(result), "--cluster", address)
        assert refused.returncode == 2, refused.stderr
        assert "no TLS certificates are set for Dask" in refused.stderr and not result.exists()

        settings = {"DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(cert), "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT":
                    str(cert), "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(key),
                    "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "true"}
        done = screener(*RUNS["one-trial"](candidates_csv), "-o", str(result), "--cluster", address,
                        env=_env(**settings))
        _same_as_jobs_1("one-trial", done, result, expected)
    finally:
        made.close()
