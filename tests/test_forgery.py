"""Forgeries as an attacker without the key would make them: edit, then recompute every hash.

Each is rejected by `screener verify` with a message naming the record and what differs.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest

from audit_support import CANDIDATES, NOW, run_cli, tiny_trial
from screener.audit.artifacts import write_candidate_artifacts
from screener.audit.trace import Source
from screener.engine import Screener
from screener.audit.keys import fingerprint, readable_fingerprint
from screener.audit.sign import sign_trace
from signing_support import (
    OTHER_KEY, SITE_KEY, records_of, signed_candidate, signer, trusted_dir, write_rechained,
)

Records = list[dict[str, Any]]


def _record(records: Records, **match: Any) -> dict[str, Any]:
    return next(r for r in records if all(r.get(k) == v for k, v in match.items()))


def edit_fact(records: Records) -> None:
    _record(records, type="fact", fact="ecog")["value"] = 1


def edit_firing(records: Records) -> None:
    firing = _record(records, type="firing", rule="E1.met")
    firing.update(rule="E1.not_met", outcome="not_met")


def edit_decision(records: Records) -> None:
    decision = _record(records, type="decision")
    decision.update(decision="eligible", failed=[])
    decision["outcomes"].update(I2="met", E1="not_met")


def edit_protocol_text(records: Records) -> None:
    criterion = _record(records[0]["trial"]["criteria"], id="I2")
    criterion["protocol"] = "ECOG < 4"


def edit_candidate_id(records: Records) -> None:
    records[0]["candidate_id"] = "P-999"


def edit_signer(records: Records) -> None:
    records[-1]["statement"]["signer"] = "Prof. Somebody Else"


def edit_meaning(records: Records) -> None:
    records[-1]["statement"]["meaning"] = "approval"


def add_unsigned_words(records: Records) -> None:
    records[-1]["note"] = "approved by the sponsor"


# (forgery, what the messages must name)
FORGERIES: list[tuple[Callable[[Records], None], list[str]]] = [
    (edit_fact, [":13: signature of Dr. A. Investigator (authorship): line 4 (fact ecog) is "
                 "not the record signed", "line 9: firing I2.not_met: rule: recorded 'I2.not_met', replayed 'I2.met'"]),
    (edit_firing, ["line 10 (firing E1.not_met) is not the record signed",
                   "line 10: firing E1.not_met: rule: recorded 'E1.not_met', replayed 'E1.met'"]),
    (edit_decision, ["decision: signed 'ineligible', the trace says 'eligible'",
                     "line 11 (decision) is not the record signed",
                     "line 11: decision: recorded 'eligible', replayed 'ineligible'"]),
    (edit_protocol_text, ["line 1 (start) is not the record signed",
                          "line 1: criterion I2.protocol: recorded 'ECOG < 4', replayed "
                          "'ECOG < 2 | fit_for_surgery'"]),
    (edit_candidate_id, ["candidate id: signed 'P-001', the trace says 'P-999'",
                         "line 1 (start) is not the record signed"]),
    (edit_signer, ["signature of Prof. Somebody Else (authorship): the signature does not verify"]),
    (edit_meaning, ["signature of Dr. A. Investigator (approval): the signature does not verify"]),
    (add_unsigned_words, ["signature of Dr. A. Investigator (authorship): fields outside the "
                          "signed statement: note"]),
]


@pytest.fixture()
def signed(tmp_path: Path) -> Path:
    return signed_candidate(tmp_path, "ineligible").trace


@pytest.mark.parametrize("forge, named", FORGERIES, ids=[f.__name__ for f, _ in FORGERIES])
def test_a_rechained_forgery_is_rejected_naming_what_differs(signed: Path, tmp_path: Path,
                                                            forge, named):
    records = records_of(signed)
    forge(records)
    write_rechained(signed, records)
    status, out, err = run_cli("verify", str(signed), "--rules", str(_tiny()),
                               "--trusted-keys", str(trusted_dir(tmp_path / "trusted")))
    assert (status, out) == (1, "")
    assert err.endswith("verify: FAILED\n")
    for message in named:
        assert message in err


def test_the_untouched_trace_verifies_as_signed_by_a_trusted_key(signed: Path, tmp_path: Path):
    status, out, err = run_cli("verify", str(signed), "--rules", str(_tiny()),
                               "--trusted-keys", str(trusted_dir(tmp_path / "trusted")))
    assert (status, err) == (0, "")
    assert f"{signed}: verified\n" in out
    key = readable_fingerprint(fingerprint(SITE_KEY.public_key()))
    assert ("  signed by Dr. A. Investigator for authorship at 4 Mar 2026, 09:30:00 UTC+00:00; key "
            f"{key}; key trusted: key0.pub\n") in out


def test_a_signature_moved_to_another_trace_is_rejected(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    original = signed_candidate(tmp_path / "a", "ineligible", "P-001").trace
    target = signed_candidate(tmp_path / "b", "eligible", "P-002").trace
    records = records_of(target)[:-1] + [copy.deepcopy(records_of(original)[-1])]
    write_rechained(target, records)
    status, _, err = run_cli("verify", str(target), "--rules", str(_tiny()),
                             "--trusted-keys", str(trusted_dir(tmp_path / "trusted")))
    assert status == 1
    assert f"{target}:13: signature of Dr. A. Investigator (authorship): the records before it " \
           "are not the ones signed" in err
    assert "candidate id: signed 'P-001', the trace says 'P-002'" in err
    assert "decision: signed 'ineligible', the trace says 'eligible'" in err


def test_a_forger_who_drops_the_signature_gets_an_unsigned_trace_not_a_verified_one(
        signed: Path, tmp_path: Path):
    records = records_of(signed)[:-1]
    edit_fact(records)
    edit_firing(records)
    for record in records:  # a consistent forgery: the replay agrees with it
        if record["type"] == "firing" and record["rule"].startswith("I2."):
            record.update(rule="I2.met", outcome="met", facts={"ecog": 1})
    records[-2]["outcomes"].update(I2="met")  # decision still ineligible (pregnant)
    records[-2]["failed"] = ["E1"]
    _record(records, type="firing", rule="E1.not_met").update(rule="E1.met", outcome="met")
    write_rechained(signed, records)
    status, out, err = run_cli("verify", str(signed), "--rules", str(_tiny()),
                               "--trusted-keys", str(trusted_dir(tmp_path / "trusted")))
    assert status == 5
    assert "verified" not in out.replace("NOT verified", "")
    assert err == f"{signed}: NOT verified: intact, but nobody signed it\n"
    assert "  signatures: none\n" in out


def test_a_forger_who_signs_with_a_key_of_their_own_is_not_trusted(signed: Path, tmp_path: Path):
    records = records_of(signed)[:-1]
    edit_candidate_id(records)
    write_rechained(signed, records)
    sign_trace(signed, signer("Dr. A. Investigator", key=OTHER_KEY))
    status, out, err = run_cli("verify", str(signed), "--rules", str(_tiny()),
                               "--trusted-keys", str(trusted_dir(tmp_path / "trusted")))
    assert status == 6
    assert f"{signed}: verified" not in out
    assert "; key NOT in the trusted keys\n" in out
    assert err == f"{signed}: NOT verified: signed with a key that is not in {tmp_path / 'trusted'}\n"


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_a_letter_edited_to_say_eligible_is_rejected(tmp_path: Path, fmt: str):
    written = signed_candidate(tmp_path, "ineligible")
    letter = written.letters[fmt]
    text = letter.read_text(encoding="utf-8")
    forged = text.replace("Not eligible: at least one inclusion criterion is not met or one "
                          "exclusion criterion applies.",
                          "Eligible: every inclusion criterion is met and no exclusion "
                          "criterion applies.")
    assert forged != text
    letter.write_text(forged, encoding="utf-8")
    status, out, err = run_cli("verify", str(written.trace), "--rules", str(_tiny()),
                               "--letter", str(letter))
    assert (status, out) == (1, "")
    line = next(n for n, row in enumerate(forged.splitlines(), 1) if "Eligible: every" in row)
    assert f"{letter}: line {line}: the letter says " in err
    assert "the trace gives '" in err and "Not eligible: at least one" in err


def test_a_letter_of_another_trace_is_rejected(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mine = signed_candidate(tmp_path / "a", "ineligible", "P-001")
    theirs = signed_candidate(tmp_path / "b", "eligible", "P-002")
    status, _, err = run_cli("verify", str(mine.trace), "--rules", str(_tiny()),
                             "--letter", str(theirs.letters["html"]))
    assert status == 1
    assert "the letter names no state of this trace" in err


def test_a_letter_in_the_sites_zone_checks_wherever_it_is_verified(tmp_path: Path):
    from zoneinfo import ZoneInfo

    trial = tiny_trial()
    facts = CANDIDATES["ineligible"]
    sources = {name: (value, Source.batch("candidates.csv", 2, name)) for name, value in facts.items()}
    written = write_candidate_artifacts(trial, "P-001", sources, Screener(trial).evaluate(facts),
                                        tmp_path, tmp_path, "Dr Wang", NOW,
                                        zone=ZoneInfo("Asia/Shanghai"), signer=signer())
    text = written.letters["md"].read_text(encoding="utf-8")
    assert "4 Mar 2026, 17:30:00 UTC+08:00" in text  # the site's time, not the verifier's (UTC)
    status, out, err = run_cli("verify", str(written.trace), "--rules", str(_tiny()),
                               "--letter", str(written.letters["md"]),
                               "--letter", str(written.letters["html"]))
    assert (status, err) == (0, "")
    # the stamp says how the letter was rendered; edited, the letter no longer checks
    written.letters["md"].write_text(text.replace("zone=Asia/Shanghai", "zone=UTC"),
                                     encoding="utf-8")
    status, _, err = run_cli("verify", str(written.trace), "--rules", str(_tiny()),
                             "--letter", str(written.letters["md"]))
    assert status == 1 and "UTC+08:00" in err


def test_a_letter_written_before_a_counter_signature_still_checks(tmp_path: Path):
    written = signed_candidate(tmp_path, "ineligible")
    sign_trace(written.trace, signer("Dr Li", "approval", OTHER_KEY))
    status, out, err = run_cli("verify", str(written.trace), "--rules", str(_tiny()),
                               "--letter", str(written.letters["html"]),
                               "--letter", str(written.letters["md"]))
    assert (status, err) == (0, "")
    assert f"  letter: {written.letters['md']} says what the trace replays to\n" in out
    assert "  signed by Dr Li for approval at " in out


def test_a_dialog_trace_forgery_is_rejected_too(tmp_path: Path):
    from audit_support import dialog_with_correction

    trace = tmp_path / "d.trace.jsonl"
    dialog_with_correction(trace)
    sign_trace(trace, signer("nurse-7"))
    records = records_of(trace)
    _record(records, type="correction", fact="ecog")["reason"] = "patient said so"
    write_rechained(trace, records)
    status, _, err = run_cli("verify", str(trace), "--rules", str(_tiny()))
    assert status == 1
    line = next(n for n, r in enumerate(records, 1) if r["type"] == "correction")
    assert f"line {line} (correction ecog) is not the record signed" in err


def _tiny() -> Path:
    from audit_support import TINY

    return TINY


def test_a_letter_that_cannot_be_read_is_not_taken_as_matching(tmp_path: Path):
    written = signed_candidate(tmp_path, "ineligible")
    status, out, err = run_cli("verify", str(written.trace), "--rules", str(_tiny()),
                               "--letter", str(tmp_path / "missing.html"))
    assert (status, out) == (1, "")
    assert err == (f"{tmp_path / 'missing.html'}: cannot read the letter: No such file or "
                   "directory\nverify: FAILED\n")
