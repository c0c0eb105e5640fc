"""Where trials live: `rules/<TRIAL>.yaml` and `dialogs/<TRIAL>.<lang>.yaml`.

The directories default to the ones beside the package (a source checkout or an editable
install) and can be moved with the SCREENER_RULES and SCREENER_DIALOGS environment variables.
"""
from __future__ import annotations

import os
from pathlib import Path

from screener.errors import ScreenerError

_ROOT = Path(__file__).resolve().parent.parent


class TrialNotFound(ScreenerError):
    code = "trial-not-found"


def rules_dir() -> Path:
    return Path(os.environ.get("SCREENER_RULES", _ROOT / "rules"))


def dialogs_dir() -> Path:
    return Path(os.environ.get("SCREENER_DIALOGS", _ROOT / "dialogs"))


def shipped_trials() -> list[str]:
    """Ids of the trials in the rules directory, sorted (test-case files are not trials)."""
    directory = rules_dir()
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.yaml") if "." not in p.stem)


def rules_path(trial_id: str | None = None) -> Path:
    """The rules file of `trial_id`, or of the only shipped trial; raises TrialNotFound."""
    trials = shipped_trials()
    if trial_id is None:
        if len(trials) != 1:
            raise TrialNotFound(
                f"choose a trial with --trial: {', '.join(trials) or 'none found in ' + str(rules_dir())}"
            )
        trial_id = trials[0]
    if trial_id not in trials:
        raise TrialNotFound(f"no rules for trial {trial_id!r} in {rules_dir()} (have: {', '.join(trials)})")
    return rules_dir() / f"{trial_id}.yaml"


def dialog_path(trial_id: str, lang: str = "en") -> Path:
    """The dialog file of a trial in a language; raises TrialNotFound."""
    path = dialogs_dir() / f"{trial_id}.{lang}.yaml"
    if not path.is_file():
        raise TrialNotFound(f"no {lang!r} dialog for trial {trial_id!r} in {dialogs_dir()}")
    return path
