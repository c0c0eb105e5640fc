"""Where trials live: rules files `<TRIAL>.yaml` and dialog files `<TRIAL>.<lang>.yaml`.

Trials are found, in this order (the first directory holding a trial id wins):
1. directories given with `--rules-dir DIR` (a site's own trials), in the order given;
2. directories in the SCREENER_TRIALS_PATH environment variable, separated like PATH;
3. the shipped trials: SCREENER_RULES / SCREENER_DIALOGS when set, else the `rules/` and
   `dialogs/` directories of a source checkout, else the copies packed into an installed wheel.

A trial's dialog files are looked for beside its rules file and in a sibling `dialogs/`
directory (the layout of the repository: `site/rules/X.yaml`, `site/dialogs/X.en.yaml`).
Files whose name has a dot before `.yaml` (`X.cases.yaml`, `X.en.yaml`) are not trials.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from screener.errors import ScreenerError
from screener.paths import read_regular

_PACKAGE = Path(__file__).resolve().parent
_ROOT = _PACKAGE.parent
_PACKED = _PACKAGE / "shipped"  # where pyproject.toml maps rules/ and dialogs/ in a wheel

PATH_VARIABLE = "SCREENER_TRIALS_PATH"
RULES_DIR_HELP = (f"also take trials from DIR (repeatable; before those of ${PATH_VARIABLE} "
                  "and the shipped ones)")


class TrialNotFound(ScreenerError):
    code = "trial-not-found"


def rules_dir() -> Path:
    """The directory of the shipped rules files."""
    if "SCREENER_RULES" in os.environ:
        return Path(os.environ["SCREENER_RULES"])
    checkout = _ROOT / "rules"
    return checkout if checkout.is_dir() or not (_PACKED / "rules").is_dir() else _PACKED / "rules"


def dialogs_dir() -> Path:
    """The directory of the shipped dialog files."""
    if "SCREENER_DIALOGS" in os.environ:
        return Path(os.environ["SCREENER_DIALOGS"])
    checkout = _ROOT / "dialogs"
    return checkout if checkout.is_dir() or not (_PACKED / "dialogs").is_dir() else _PACKED / "dialogs"


@dataclass(frozen=True, slots=True)
class TrialFile:
    """One trial found on disk: its rules file, where it came from, its dialog files."""

    id: str
    rules: Path
    origin: str  # "shipped", "--rules-dir" or the environment variable's name
    dialogs: tuple[tuple[str, Path], ...]  # (language, path), sorted by language

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(lang for lang, _ in self.dialogs)

    def content_hash(self) -> str:
        """SHA-256 of the rules file's bytes, as traces record it."""
        return hashlib.sha256(read_regular(self.rules)).hexdigest()


def _trial_ids(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.yaml") if "." not in p.stem)


def _dialogs(trial_id: str, places: Iterable[Path]) -> tuple[tuple[str, Path], ...]:
    found: dict[str, Path] = {}
    for place in places:
        if not place.is_dir():
            continue
        for path in sorted(place.glob(f"{trial_id}.*.yaml")):
            lang = path.name[len(trial_id) + 1:-len(".yaml")]
            if lang != "cases" and "." not in lang:
                found.setdefault(lang, path)
    return tuple(sorted(found.items()))


@dataclass(frozen=True)
class Catalog:
    """Every trial found, in search order; `shadowed` holds ids found again further down."""

    trials: tuple[TrialFile, ...]
    shadowed: tuple[TrialFile, ...] = ()
    searched: tuple[Path, ...] = ()

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.trials]

    def get(self, trial_id: str) -> TrialFile:
        """The trial with this id; raises TrialNotFound naming what there is."""
        for found in self.trials:
            if found.id == trial_id:
                return found
        raise TrialNotFound(f"no rules for trial {trial_id!r} in {self.where()} "
                            f"(have: {', '.join(self.ids) or 'none'})")

    def select(self, trial_ids: Sequence[str] | None, every: bool = False) -> list[TrialFile]:
        """The trials named (each once, in the order given), or every trial found when
        `every` is set or none is named. Raises TrialNotFound when there is none."""
        if trial_ids and not every:
            return [self.get(t) for t in dict.fromkeys(trial_ids)]
        if not self.trials:
            raise TrialNotFound(f"no trial found in {self.where()}")
        return list(self.trials)

    def dialog_path(self, trial_id: str, lang: str = "en") -> Path:
        """The dialog file of a trial in a language; raises TrialNotFound."""
        found = self.get(trial_id)
        for language, path in found.dialogs:
            if language == lang:
                return path
        raise TrialNotFound(f"no {lang!r} dialog for trial {trial_id!r} beside {found.rules} "
                            f"(have: {', '.join(found.languages) or 'none'})")

    def where(self) -> str:
        return ", ".join(str(p) for p in self.searched) or "no directory"


def catalog(extra_dirs: Sequence[str | os.PathLike[str]] = ()) -> Catalog:
    """Find every trial: `extra_dirs` first, then $SCREENER_TRIALS_PATH, then the shipped ones."""
    places: list[tuple[Path, str, tuple[Path, ...]]] = []
    for directory in extra_dirs:
        path = Path(directory)
        places.append((path, "--rules-dir", (path, path.parent / "dialogs")))
    for entry in os.environ.get(PATH_VARIABLE, "").split(os.pathsep):
        if entry:
            path = Path(entry)
            places.append((path, PATH_VARIABLE, (path, path.parent / "dialogs")))
    places.append((rules_dir(), "shipped", (dialogs_dir(),)))
    trials: list[TrialFile] = []
    shadowed: list[TrialFile] = []
    seen: set[str] = set()
    for directory, origin, dialog_places in places:
        for trial_id in _trial_ids(directory):
            found = TrialFile(trial_id, directory / f"{trial_id}.yaml", origin,
                              _dialogs(trial_id, dialog_places))
            (shadowed if trial_id in seen else trials).append(found)
            seen.add(trial_id)
    return Catalog(tuple(trials), tuple(shadowed), tuple(p for p, _, _ in places))


def trial_dirs(rules_dir: str | os.PathLike[str] | None = None) -> tuple[Path, ...]:
    """The directories trials are looked up in, in order: `rules_dir` (a --rules-dir) when
    given, then those of $SCREENER_TRIALS_PATH, then the shipped rules."""
    return catalog([rules_dir] if rules_dir else []).searched


def dialogs_for(rules_file: str | os.PathLike[str]) -> tuple[tuple[str, Path], ...]:
    """The dialog files of the trial in `rules_file`, (language, path) sorted by language:
    the shipped dialogs for a shipped rules file, else those beside it or in ../dialogs."""
    path = Path(rules_file)
    trial_id = path.name[:-len(".yaml")] if path.name.endswith(".yaml") else path.stem
    if path.parent.resolve() == rules_dir().resolve():
        return _dialogs(trial_id, (dialogs_dir(),))
    return _dialogs(trial_id, (path.parent, path.parent.parent / "dialogs"))


def shipped_trials() -> list[str]:
    """Ids of every trial found (site directories of the environment and the shipped ones)."""
    return catalog().ids


def rules_path(trial_id: str | None = None, extra_dirs: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """The rules file of `trial_id`, or of the only trial found; raises TrialNotFound."""
    found = catalog(extra_dirs)
    if trial_id is None:
        if len(found.trials) != 1:
            raise TrialNotFound(
                f"choose a trial with --trial: {', '.join(found.ids) or 'none found in ' + found.where()}"
            )
        return found.trials[0].rules
    return found.get(trial_id).rules


def dialog_path(trial_id: str, lang: str = "en", extra_dirs: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """The dialog file of a trial in a language; raises TrialNotFound."""
    return catalog(extra_dirs).dialog_path(trial_id, lang)
