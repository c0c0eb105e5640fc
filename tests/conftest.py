from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from screener.engine import Screener
from screener.model import Trial
from screener.rules.check import load_trial

ROOT = Path(__file__).resolve().parent.parent
TRIAL = "NCT03862768"  # tests name their trial: more trials may be shipped beside it
RULES = ROOT / "rules" / f"{TRIAL}.yaml"
SHARED = ROOT.parent / "shared"

# Letters and explanations show times in the site's zone (TZ): UTC here, so the golden files
# read the same on every machine; tests of other zones set their own.
os.environ["TZ"] = "UTC"
time.tzset()


@pytest.fixture(scope="session", autouse=True)
def _internal_error_log_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """An internal failure provoked by a test is logged under the test run's own folder, never
    in the home of whoever runs the suite (the screener logs to $XDG_STATE_HOME/screener/)."""
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="session")
def trial() -> Trial:
    return load_trial(RULES)


@pytest.fixture(scope="session")
def screener(trial: Trial) -> Screener:
    return Screener(trial)


def case_fields(cases: dict, case: dict) -> dict:
    """The candidate of one hand-made case: `base` changed by `set`/`unset`, or `only`."""
    if "only" in case:
        fields = dict(case["only"])
    else:
        fields = {k: v for k, v in cases["base"].items() if k not in case.get("unset", [])}
        fields.update(case.get("set", {}))
    return {"candidate_id": "case", **fields}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tampered: the test alters a trace on purpose, so "
                                       "`traces_verified` leaves its traces alone")


@pytest.fixture
def traces_verified(request: pytest.FixtureRequest, tmp_path: Path):
    """After the test, `screener verify` on every trace it wrote under tmp_path: a finished
    screening's trace verifies (exit 0), a paused one is an intact prefix (exit 3). Dialog
    test modules use it for every test (`pytestmark`); a test that alters a trace on
    purpose is marked `tampered`."""
    yield
    if request.node.get_closest_marker("tampered"):
        return
    from audit_support import run_cli

    # the rules a test's traces may name: the test trials, and any the test wrote itself
    folders = {p.parent for base in (ROOT / "tests" / "data", tmp_path)
               for p in base.rglob("*.yaml") if "bad_rules" not in p.parts}
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("SCREENER_TRIALS_PATH", os.pathsep.join(sorted(map(str, folders))))
    try:
        _verify_all(tmp_path, run_cli)
    finally:
        monkeypatch.undo()


def _verify_all(tmp_path: Path, run_cli) -> None:
    for trace in sorted(tmp_path.rglob("*.jsonl")):
        head = trace.read_bytes()[:400]
        if b'"format":"screener-trace/' not in head:
            continue  # results, not a trace
        status, out, err = run_cli("verify", str(trace))
        assert status in (0, 3), f"{trace} does not verify (exit {status}):\n{out}{err}"


@pytest.fixture
def compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each trial loaded and compiled once for the whole test run, for tests of whole
    conversations and their verification, not of loading (which `screen`, `resume` and
    `verify` each repeat, in the same process here)."""
    import screener.dialog.cli as dialog_cli
    import screener.engine as engine
    import screener.rules.check as check

    monkeypatch.setattr(check, "load_trial", _load)
    monkeypatch.setattr(dialog_cli, "load_trial", _load)
    monkeypatch.setattr(dialog_cli, "Screener", _engine)
    monkeypatch.setattr(engine, "Screener", _engine)


_LOADED: dict[str, Any] = {}
_ENGINES: dict[int, Any] = {}
_REAL_SCREENER = Screener


def _load(path: Any) -> Any:
    key = hashlib.sha256(Path(path).read_bytes()).hexdigest() + str(Path(path).resolve())
    if key not in _LOADED:
        _LOADED[key] = load_trial(path)
    return _LOADED[key]


def _engine(trial: Any) -> Any:
    if id(trial) not in _ENGINES:
        _ENGINES[id(trial)] = (trial, _REAL_SCREENER(trial))
    return _ENGINES[id(trial)][1]


def running_batch(tmp_path: Path, out: Path, stderr: int, *options: str, env: dict | None = None
                  ) -> subprocess.Popen:
    """A batch writing into `tmp_path` (with `options`, which then name its trials; of TRIAL
    without) reading 20,000 rows from a pipe left open: it has written records and waits for
    more input. However fast screening gets, the run is still going when the test interrupts
    it. Killed, if it is not running by then."""
    process = subprocess.Popen([sys.executable, "-m", "screener", "batch", *(options or ("--trial", TRIAL)),
                                "--format", "csv", "-", "-o", str(out)],
                               stdin=subprocess.PIPE, stderr=stderr, env=env)
    try:
        rows = "".join(f"c{i:05d},{i % 5},{1 + i % 3}\n" for i in range(20_000))
        process.stdin.write(("candidate_id,ecog,asa_class\n" + rows).encode("utf-8"))
        process.stdin.flush()
        deadline = time.monotonic() + 120
        while not any(p.name.endswith(".part") and p.stat().st_size > 0 for p in tmp_path.iterdir()):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        assert process.poll() is None
    except BaseException:
        process.kill()
        process.communicate(timeout=60)
        raise
    return process
