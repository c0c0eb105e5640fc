"""Signing keys, signed traces and letters, as a site and an investigator use them."""
from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from audit_support import GOLDEN, TINY, run_cli
from conftest import ROOT, TRIAL
from screener.audit.chain import read_trace
from screener.audit.keys import SigningKeyError, fingerprint, load_private, readable_fingerprint
from screener.audit.sign import sign_trace
from screener.audit.trace import TraceIntegrityError
from screener.cli import main
from signing_support import (
    OTHER_KEY, SITE_KEY, records_of, signed_candidate, signer, trusted_dir, write_rechained,
)

pytestmark = pytest.mark.usefixtures("traces_verified")  # every trace a test writes verifies

UPDATE = os.environ.get("SCREENER_UPDATE_GOLDEN") == "1"


def screener(*argv: str, cwd: Path, stdin: str = "", **env: str) -> subprocess.CompletedProcess:
    """`python -m screener ...` as a user runs it, with no terminal."""
    return subprocess.run([sys.executable, "-m", "screener", *argv], input=stdin, cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd),
                               "XDG_STATE_HOME": str(cwd), **env})


@pytest.fixture()
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "pass.txt"
    path.write_text("correct horse battery staple\n", encoding="utf-8")
    return path


def test_keygen_writes_a_private_key_for_its_owner_and_a_public_key_for_all(
        tmp_path: Path, passphrase_file: Path, capsys: pytest.CaptureFixture[str]):
    old = os.umask(0)  # the modes must not depend on the caller's umask
    try:
        status = main(["keygen", str(tmp_path / "site.key"), "--passphrase-file",
                       str(passphrase_file)])
    finally:
        os.umask(old)
    out = capsys.readouterr().out
    assert status == 0
    private, public = tmp_path / "site.key", tmp_path / "site.key.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert private.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----\n")
    key = load_private(private, b"correct horse battery staple")
    assert f"fingerprint: {readable_fingerprint(fingerprint(key.public_key()))}\n" in out


def test_keygen_never_overwrites_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "site.key.pub").write_text("mine\n")
    status = main(["keygen", str(tmp_path / "site.key")])
    assert status == 2
    assert f"{tmp_path / 'site.key.pub'}: already exists; keys are never overwritten" in \
        capsys.readouterr().err
    assert not (tmp_path / "site.key").exists()
    assert (tmp_path / "site.key.pub").read_text() == "mine\n"


def test_keygen_without_a_passphrase_says_so(tmp_path: Path):
    done = screener("keygen", "open.key", cwd=tmp_path)
    assert done.returncode == 0
    assert "note: the private key is not protected by a passphrase" in done.stderr
    assert (tmp_path / "open.key").read_text().startswith("-----BEGIN PRIVATE KEY-----\n")


def test_keygen_asks_twice_and_refuses_passphrases_that_differ(tmp_path: Path):
    from screener.audit.signing_cli import run_keygen
    from screener.cli import build_parser

    typed = iter(["first", "second"])
    args = build_parser().parse_args(["keygen", str(tmp_path / "k")])
    assert run_keygen(args, ask=lambda prompt: next(typed)) == 2
    assert not (tmp_path / "k").exists()
    typed = iter(["same", "same"])
    assert run_keygen(args, ask=lambda prompt: next(typed)) == 0
    load_private(tmp_path / "k", b"same")


def test_a_wrong_or_missing_passphrase_is_a_clear_error_without_traceback(
        tmp_path: Path, passphrase_file: Path):
    assert screener("keygen", "li.key", "--passphrase-file", str(passphrase_file),
                    cwd=tmp_path).returncode == 0
    trace = signed_candidate(tmp_path, "eligible").trace
    before = trace.read_bytes()
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("guess\n")
    done = screener("sign", str(trace), "--key", "li.key", "--name", "Dr Li",
                    "--passphrase-file", str(wrong), "--rules", str(TINY), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "screener sign: li.key: wrong passphrase, or the key file is damaged\n"
    done = screener("sign", str(trace), "--key", "li.key", "--name", "Dr Li", "--rules",
                    str(TINY), cwd=tmp_path)
    assert done.returncode == 2
    assert "the key is protected by a passphrase: give it with --passphrase-file FILE or " \
           "$SCREENER_KEY_PASSPHRASE" in done.stderr
    assert "Traceback" not in done.stderr
    assert trace.read_bytes() == before


def test_sign_and_verify_round_trip_through_the_command_line(tmp_path: Path):
    trace = signed_candidate(tmp_path, "ineligible").trace
    assert screener("keygen", "li.key", cwd=tmp_path,
                    SCREENER_KEY_PASSPHRASE="s3cret").returncode == 0
    done = screener("sign", str(trace), "--key", "li.key", "--meaning", "approval", "--name",
                    "Dr Li", "--rules", str(TINY), cwd=tmp_path, SCREENER_KEY_PASSPHRASE="s3cret")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{trace}: signed by Dr Li for approval at ")
    trusted = trusted_dir(tmp_path / "trusted")
    (trusted / "li.pub").write_bytes((tmp_path / "li.key.pub").read_bytes())
    done = screener("verify", str(trace), "--rules", str(TINY), "--trusted-keys", str(trusted),
                    cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    lines = done.stdout.splitlines()
    assert lines[0] == f"{trace}: verified"
    assert [line.split(" at ")[0] for line in lines if line.startswith("  signed by")] == [
        "  signed by Dr. A. Investigator for authorship", "  signed by Dr Li for approval"]
    assert lines[-1].endswith("; key trusted: li.pub")
    assert [r["type"] for r in records_of(trace)][-3:] == ["end", "signature", "signature"]


@pytest.mark.tampered
def test_sign_refuses_a_trace_that_does_not_verify(tmp_path: Path, passphrase_file: Path):
    trace = signed_candidate(tmp_path, "ineligible").trace
    records = records_of(trace)[:-1]
    next(r for r in records if r.get("fact") == "ecog")["value"] = 0
    write_rechained(trace, records)
    before = trace.read_bytes()
    screener("keygen", "li.key", cwd=tmp_path)
    done = screener("sign", str(trace), "--key", "li.key", "--name", "Dr Li", "--rules",
                    str(TINY), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{trace}: line 9: firing I2.not_met: rule: recorded 'I2.not_met', replayed " \
           "'I2.met'" in done.stderr
    assert done.stderr.endswith("screener sign: not signed: the trace does not verify\n")
    assert trace.read_bytes() == before


def test_an_unfinished_trace_is_not_signed(tmp_path: Path):
    trace = signed_candidate(tmp_path, "eligible").trace
    trace.write_text("".join(trace.read_text().splitlines(keepends=True)[:-2]))
    with pytest.raises(Exception, match="not sealed"):
        sign_trace(trace, signer())


@pytest.mark.tampered
def test_only_signatures_may_follow_the_end_record(tmp_path: Path):
    trace = signed_candidate(tmp_path, "eligible").trace
    records = records_of(trace)
    write_rechained(trace, records + [dict(records[3])])
    with pytest.raises(TraceIntegrityError, match=r":14: record after the end record"):
        read_trace(trace)
    write_rechained(trace, records[:-2] + [records[-1], records[-2]])
    with pytest.raises(TraceIntegrityError, match=r":12: signature before the end record"):
        read_trace(trace)


def test_verify_without_trusted_keys_checks_the_signature_but_not_whose_key_it_is(tmp_path: Path):
    trace = signed_candidate(tmp_path, "eligible", by=signer(key=OTHER_KEY)).trace
    status, out, err = run_cli("verify", str(trace), "--rules", str(TINY))
    assert (status, err) == (0, "")
    assert out.rstrip().endswith("; key not checked (no --trusted-keys)")


def test_a_damaged_trusted_keys_folder_is_reported(tmp_path: Path):
    trace = signed_candidate(tmp_path, "eligible").trace
    trusted = trusted_dir(tmp_path / "trusted")
    (trusted / "broken.pub").write_text("not a key\n")
    status, out, err = run_cli("verify", str(trace), "--rules", str(TINY),
                               "--trusted-keys", str(trusted))
    assert (status, out) == (2, "")
    assert err == f"verify: {trusted / 'broken.pub'}: not a PEM public key\n"


CANDIDATES_CSV = ("candidate_id,birth_date,screening_date,ecog,pregnant\n"
                  "P-1,1990-05-17,2026-03-04,1,no\n"
                  "P-2,1990-05-17,2026-03-04,3,yes\n"
                  "P-3,2008-03-04,2026-03-04,0,\n"
                  "P-4,1970-01-01,2026-03-04,0,no\n")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_batch_signs_every_trace_and_every_letter_shows_it(tmp_path: Path, jobs: str,
                                                          passphrase_file: Path):
    (tmp_path / "in.csv").write_text(CANDIDATES_CSV)
    screener("keygen", "site.key", "--passphrase-file", str(passphrase_file), cwd=tmp_path)
    done = screener("batch", "in.csv", "--rules", str(TINY), "-o", "out.jsonl", "--traces", "t",
                    "--letters", "l", "--operator", "Dr Wang", "--signer", "Site 7 (Dr Wang)",
                    "--sign-key", "site.key", "--passphrase-file", str(passphrase_file),
                    "--jobs", jobs, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "site.pub").write_bytes((tmp_path / "site.key.pub").read_bytes())
    traces = sorted((tmp_path / "t").glob("*.trace.jsonl"))
    assert len(traces) == 4
    for trace in traces:
        letters = [str(trace).replace("/t/", "/l/").replace(".trace.jsonl", f".letter.{fmt}")
                   for fmt in ("md", "html")]
        done = screener("verify", str(trace), "--rules", str(TINY), "--trusted-keys",
                        str(trusted), "--letter", letters[0], "--letter", letters[1],
                        cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "  signed by Site 7 (Dr Wang) for authorship at " in done.stdout
        assert "| Site 7 (Dr Wang) | authorship | " in Path(letters[0]).read_text()
        assert "<tr><td>Site 7 (Dr Wang)</td><td>authorship</td>" in Path(letters[1]).read_text()
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["decision"] for r in results] == ["eligible", "ineligible", "undetermined",
                                                 "eligible"]


def test_batch_sign_key_needs_a_printed_name(tmp_path: Path):
    (tmp_path / "in.csv").write_text(CANDIDATES_CSV)
    screener("keygen", "site.key", cwd=tmp_path)
    done = screener("batch", "in.csv", "--rules", str(TINY), "--traces", "t", "--sign-key",
                    "site.key", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert "--sign-key needs the signer's printed name: --signer NAME (or --operator NAME)" \
        in done.stderr
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())


def test_a_dialog_screening_is_signed_before_its_letter_is_written(tmp_path: Path,
                                                                  passphrase_file: Path):
    from test_dialog_trace import ANSWERS

    (tmp_path / "answers.yaml").write_text(yaml.safe_dump(ANSWERS), encoding="utf-8")
    screener("keygen", "wang.key", "--passphrase-file", str(passphrase_file), cwd=tmp_path)
    done = screener("screen", "--trial", TRIAL, "--answers", "answers.yaml", "--session",
                    "session.json", "--trace", "s.trace.jsonl", "--letter", "s.letter.md",
                    "--operator", "Dr Wang", "--sign-key", "wang.key", "--meaning",
                    "responsibility", "--passphrase-file", str(passphrase_file),
                    cwd=tmp_path, stdin="yes\n\n")
    assert done.returncode == 0, done.stderr
    (tmp_path / "trusted").mkdir()
    (tmp_path / "trusted" / "wang.pub").write_bytes((tmp_path / "wang.key.pub").read_bytes())
    done = screener("verify", "s.trace.jsonl", "--rules-dir", str(ROOT / "rules"),
                    "--trusted-keys", "trusted", "--letter", "s.letter.md", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "  signed by Dr Wang for responsibility at " in done.stdout
    assert "| Dr Wang | responsibility | " in (tmp_path / "s.letter.md").read_text()


def test_a_wrong_passphrase_stops_the_dialog_before_the_first_question(tmp_path: Path,
                                                                      passphrase_file: Path):
    screener("keygen", "wang.key", "--passphrase-file", str(passphrase_file), cwd=tmp_path)
    done = screener("screen", "--trial", TRIAL, "--trace", "s.trace.jsonl", "--operator", "W",
                    "--sign-key", "wang.key", cwd=tmp_path, stdin="P-1\n",
                    SCREENER_KEY_PASSPHRASE="nope")
    assert done.returncode == 2
    assert "wang.key: wrong passphrase, or the key file is damaged" in done.stderr
    assert "Patient or candidate id?" not in done.stdout
    assert not (tmp_path / "s.trace.jsonl").exists()


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_signed_letter_matches_reviewed_golden_file(tmp_path: Path, fmt: str):
    written = signed_candidate(tmp_path, "ineligible")
    sign_trace(written.trace, signer("Dr Li", "approval", OTHER_KEY))  # after the letter
    text = written.letters[fmt].read_text(encoding="utf-8")
    golden = GOLDEN / f"letter_signed.{fmt}"
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
    assert readable_fingerprint(fingerprint(SITE_KEY.public_key())) in text
    assert "Dr Li" not in text  # a letter shows the signatures its trace had when written


def test_a_key_that_is_not_ed25519_or_not_private_is_refused(tmp_path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = tmp_path / "ec.key"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(SigningKeyError, match="not an Ed25519 key"):
        load_private(other, None)
    public = tmp_path / "site.pub"
    from signing_support import write_public

    write_public(public)
    with pytest.raises(SigningKeyError, match=r"not a PEM private key \(a \.pub file is the "
                                              r"public half\)"):
        load_private(public, None)


def test_keygen_and_sign_ask_the_passphrase_in_a_real_terminal(tmp_path: Path):
    pexpect = pytest.importorskip("pexpect")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TERM": "xterm", "NO_COLOR": "1"}

    def spawn(*argv: str) -> "pexpect.spawn":
        return pexpect.spawn(sys.executable, ["-m", "screener", *argv], env=env,
                             cwd=str(tmp_path), encoding="utf-8", timeout=60)

    child = spawn("keygen", "li.key")
    seen = io.StringIO()
    child.logfile_read = seen  # everything the terminal showed
    child.expect_exact("Passphrase for the new key (Enter for none): ")
    child.sendline("open sesame")
    child.expect_exact("The same passphrase again: ")
    child.sendline("open sesame")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "open sesame" not in seen.getvalue()  # typed without echo
    assert "fingerprint: " in seen.getvalue()
    trace = signed_candidate(tmp_path, "eligible").trace
    child = spawn("sign", str(trace), "--key", "li.key", "--name", "Dr Li", "--rules", str(TINY))
    child.expect_exact("passphrase for li.key: ")
    child.sendline("open sesame")
    child.expect_exact(f"{trace}: signed by Dr Li for approval at ")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert [r["type"] for r in records_of(trace)][-2:] == ["signature", "signature"]


def test_a_screening_in_a_real_terminal_asks_the_passphrase_first_and_ends_signed(
        tmp_path: Path, passphrase_file: Path):
    pytest.importorskip("pexpect")
    from test_dialog_e2e import Terminal
    from test_dialog_flow import MAN

    screener("keygen", "wang.key", "--passphrase-file", str(passphrase_file), cwd=tmp_path)
    term = Terminal(tmp_path, "screen", "--trial", TRIAL, "--candidate-id", "P-1", "--session",
                    str(tmp_path / "s.json"), "--trace", "p1.trace.jsonl", "--letter",
                    "p1.letter.html", "--operator", "Dr Wang", "--sign-key", "wang.key")
    term.expect("passphrase for wang.key: ")
    term.child.send("correct horse battery staple\r")
    term.answers(MAN)
    term.expect("Decision: eligible")
    assert term.finish() == 0
    (tmp_path / "trusted").mkdir()
    (tmp_path / "trusted" / "wang.pub").write_bytes((tmp_path / "wang.key.pub").read_bytes())
    done = screener("verify", "p1.trace.jsonl", "--rules-dir", str(ROOT / "rules"),
                    "--trusted-keys", "trusted", "--letter", "p1.letter.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "  signed by Dr Wang for authorship at " in done.stdout
    assert "<tr><td>Dr Wang</td><td>authorship</td>" in (tmp_path / "p1.letter.html").read_text()


def test_explain_names_who_signed_for_what(tmp_path: Path):
    written = signed_candidate(tmp_path, "ineligible")
    status, out, _ = run_cli("explain", str(written.trace))
    assert status == 0
    assert ("Signed by Dr. A. Investigator for authorship at 4 Mar 2026, 09:30:00 UTC+00:00; key "
            + readable_fingerprint(fingerprint(SITE_KEY.public_key()))) in " ".join(out.split())
