from __future__ import annotations

from pathlib import Path

import pytest

from screener.engine import Screener
from screener.model import Trial
from screener.trial import load_trial

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules" / "NCT03862768.yaml"
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def trial() -> Trial:
    return load_trial(RULES)


@pytest.fixture(scope="session")
def screener(trial: Trial) -> Screener:
    return Screener(trial)
