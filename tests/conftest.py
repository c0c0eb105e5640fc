from __future__ import annotations

import os
import time
from pathlib import Path

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
