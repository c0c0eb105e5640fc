"""How facts are read from FHIR: the mapping files, loaded and checked.

A mapping file is YAML data (format in docs/fhir.md): per fact, the resource types, the codes
(LOINC, SNOMED CT, ICD-10-CM, RxNorm, ATC, UCUM, any system URI, or a local value-set file),
status filters, a lookback window, which result counts and what its value is. Nothing in
Python knows a trial, a site or a code. Every problem is reported as `file:line:col: code:
message`, all together, like a rules file's.

Mappings are found in `mappings/` folders: those of the `--rules-dir` directories (inside
the directory or beside it, as dialogs are), then the shipped ones. The first mapping of a
fact wins, so a site overrides a shipped mapping by mapping the same fact.
"""
from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from screener.errors import RuleProblem, RulesError
from screener.model import Span
from screener.rules.read import PosDict, PosList, load_yaml

SYSTEMS = {
    "loinc": "http://loinc.org",
    "snomed": "http://snomed.info/sct",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "icd10": "http://hl7.org/fhir/sid/icd-10",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "atc": "http://www.whocc.no/atc",
    "ucum": "http://unitsofmeasure.org",
    "loinc-answers": "http://loinc.org",
}
RESOURCES = ("Patient", "Observation", "Condition", "MedicationStatement", "MedicationRequest",
             "MedicationAdministration", "Procedure")
PICKS = ("latest", "earliest", "highest", "lowest", "all", "exists")
# Values a mapping can take from a resource; the mapping forms ({concept: ...} ...) are below.
PLAIN_VALUES = ("quantity", "number", "boolean", "date", "start", "end", "present",
                "reference_high", "birthDate")
FORMS = ("concept", "code", "component", "gender")
# Which statuses count when a mapping names none: a laboratory result counts when final,
# amended or corrected; a condition when active (or back); a medication when taken.
DEFAULT_STATUS = {
    "Observation": ("final", "amended", "corrected"),
    "Condition": ("active", "recurrence", "relapse"),
    "MedicationStatement": ("active", "completed", "stopped", "on-hold"),
    "MedicationRequest": ("active", "completed", "stopped", "on-hold"),
    "MedicationAdministration": ("completed", "in-progress", "stopped", "on-hold"),
    "Procedure": ("completed", "in-progress"),
}
NOT_A_DIAGNOSIS = ("refuted", "entered-in-error")
_KEYS = ("resource", "code", "value_set", "status", "verification", "lookback", "pick", "value",
         "item", "complete", "note")


class CodeSet:
    """Codes per system URI: exact codes, and prefixes (written with a trailing `*`)."""

    def __init__(self, exact: dict[str, frozenset[str]] | None = None,
                 prefixes: dict[str, tuple[str, ...]] | None = None):
        self.exact = dict(exact or {})
        self.prefixes = dict(prefixes or {})

    def __repr__(self) -> str:
        return f"CodeSet({self.exact!r}, {self.prefixes!r})"

    def has(self, system: Any, code: Any) -> bool:
        """Whether (system, code) is in the set."""
        if code in self.exact.get(system, ()):
            return True
        return isinstance(code, str) and any(code.startswith(p) for p in self.prefixes.get(system, ()))

    def matches(self, codings: Iterable[Any]) -> bool:
        """Whether any of `codings` is in the set."""
        return any(isinstance(c, dict) and self.has(c.get("system"), c.get("code")) for c in codings)


@dataclass(frozen=True)
class CodeTable:
    """Codes (or `*` prefixes) per system mapped to fact values; the longest match wins."""

    entries: tuple[tuple[str, str, Any], ...]  # (system URI, code or prefix*, value)

    def value_of(self, codings: Iterable[Any]) -> tuple[bool, Any]:
        """(found, value) for the first coding that the table maps."""
        for coding in codings:
            if not isinstance(coding, dict):
                continue
            system, code = coding.get("system"), coding.get("code")
            best: tuple[int, Any] | None = None
            for entry_system, key, value in self.entries:
                if entry_system != system or not isinstance(code, str):
                    continue
                if key.endswith("*") and code.startswith(key[:-1]):
                    rank = len(key) - 1
                elif key == code:
                    rank = 10_000
                else:
                    continue
                if best is None or rank > best[0]:
                    best = (rank, value)
            if best is not None:
                return True, best[1]
        return False, None


@dataclass(frozen=True)
class ValueRule:
    """What value a chosen resource gives: a plain kind, or a form with its table."""

    kind: str  # one of PLAIN_VALUES or FORMS
    table: CodeTable | None = None  # concept, code, gender
    component: CodeSet | None = None  # component
    part: str = "quantity"  # component: the value taken from the component


@dataclass(frozen=True)
class FactMapping:
    """How one fact is read from a patient's resources."""

    fact: str
    span: Span
    resources: tuple[str, ...]
    codes: CodeSet | None
    statuses: tuple[str, ...] | None  # None: DEFAULT_STATUS per resource type
    verification_excluded: tuple[str, ...]
    lookback_days: int | None
    anchor: str | None  # a date fact; None: the run's --as-of
    pick: str
    value: ValueRule | None
    item: tuple[tuple[str, ValueRule], ...] = ()
    complete: bool = False


@dataclass
class Mappings:
    """Every fact's mapping, and the files they came from."""

    facts: dict[str, FactMapping] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def resource_types(self) -> set[str]:
        return {r for m in self.facts.values() for r in m.resources}


def shipped_dir() -> Path:
    """The folder of the shipped mappings (the checkout's, else the installed package's)."""
    package = Path(__file__).resolve().parent.parent
    checkout = package.parent / "mappings"
    return checkout if checkout.is_dir() else package / "shipped" / "mappings"


def mapping_dirs(rules_dirs: Sequence[str | os.PathLike[str]] = (), shipped: bool = True) -> list[Path]:
    """Where mappings are looked up, first found first: each --rules-dir's `mappings/`
    (inside it, then beside it), then (unless `shipped` is False) the shipped folder."""
    places: list[Path] = []
    for directory in rules_dirs:
        places += [Path(directory) / "mappings", Path(directory).parent / "mappings"]
    if shipped:
        places.append(shipped_dir())
    seen: list[Path] = []
    for place in places:
        if place.is_dir() and place.resolve() not in [p.resolve() for p in seen]:
            seen.append(place)
    return seen


def load_mappings(rules_dirs: Sequence[str | os.PathLike[str]] = (),
                  files: Sequence[str | os.PathLike[str]] | None = None, shipped: bool = True) -> Mappings:
    """Load every mapping file (or just `files`); raises RulesError listing every problem."""
    paths = [Path(f) for f in files] if files is not None else [
        p for d in mapping_dirs(rules_dirs, shipped) for p in sorted(d.glob("*.yaml"))]
    problems: list[RuleProblem] = []
    found = Mappings()
    for path in paths:
        try:
            document = load_yaml(path)
        except RulesError as exc:
            problems.extend(exc.problems)
            continue
        found.files.append(str(path))
        for mapping in _file_mappings(str(path), document, problems):
            found.facts.setdefault(mapping.fact, mapping)
    if problems:
        raise RulesError(problems)
    return found


def check_against(mappings: Mappings, facts: dict[str, Any]) -> list[RuleProblem]:
    """Problems of mappings that name a fact of these trials in a way its type refuses."""
    problems = []
    for mapping in mappings.facts.values():
        spec = facts.get(mapping.fact)
        if spec is None:
            continue
        where = mapping.span
        if (spec.type == "list") != (mapping.pick == "all"):
            problems.append(RuleProblem(where.path, where.line, where.column, "mapping-kind",
                                        f"{mapping.fact} is a {spec.type} fact: "
                                        + ("pick all (with item) reads a list" if spec.type == "list"
                                           else "only a list fact takes pick all")))
        elif spec.type == "list":
            names = {s.name for s in spec.item}
            for name, _ in mapping.item:
                if name not in names:
                    problems.append(RuleProblem(where.path, where.line, where.column, "unknown-field",
                                                f"{mapping.fact} items have no field {name!r}"))
        else:
            kind = "present" if mapping.pick == "exists" else mapping.value.kind if mapping.value else ""
            fits = _FITS.get(kind)
            if fits is not None and spec.type not in fits:
                article = "an" if spec.type[0] in "aeiou" else "a"
                problems.append(RuleProblem(where.path, where.line, where.column, "mapping-kind",
                                            f"{mapping.fact} is {article} {spec.type} fact: "
                                            f"{'pick exists' if kind == 'present' else 'value ' + kind} "
                                            f"gives a {' or '.join(fits)}"))
        if mapping.anchor and (facts.get(mapping.anchor) is None or facts[mapping.anchor].type != "date"):
            problems.append(RuleProblem(where.path, where.line, where.column, "bad-anchor",
                                        f"{mapping.fact}: lookback anchor {mapping.anchor!r} is not a "
                                        "date fact of the trial"))
    return problems


# The fact types each plain value fits (the forms with a table give what the table says).
_FITS = {
    "quantity": ("quantity", "decimal", "integer"), "reference_high": ("quantity", "decimal", "integer"),
    "number": ("integer", "decimal"), "boolean": ("boolean",), "present": ("boolean",),
    "date": ("date",), "start": ("date",), "end": ("date",), "birthDate": ("date",),
    "component": ("quantity", "decimal", "integer"),
}


# --- reading one file ---------------------------------------------------------------------


class _Problems:
    def __init__(self, path: str, out: list[RuleProblem]):
        self.path, self.out = path, out

    def add(self, span: Span, code: str, message: str) -> None:
        self.out.append(RuleProblem(self.path, span.line, span.column, code, message))


def _span_of(mapping: Any, key: str) -> Span:
    if isinstance(mapping, PosDict):
        return mapping.value_spans.get(key) or mapping.key_spans.get(key) or mapping.span
    return getattr(mapping, "span", Span("", 1, 1))


def _file_mappings(path: str, document: Any, out: list[RuleProblem]) -> list[FactMapping]:
    report = _Problems(path, out)
    top = Span(path, 1, 1)
    if not isinstance(document, PosDict):
        report.add(top, "not-a-mapping-file", "a mapping file is a YAML mapping with a `facts:` key")
        return []
    for key in document:
        if key not in ("facts", "systems", "note"):
            report.add(document.key_spans[key], "unknown-key",
                       f"{key!r} is not a key of a mapping file (facts, systems, note)")
    systems = dict(SYSTEMS)
    extra = document.get("systems")
    if extra is None:
        pass
    elif not isinstance(extra, PosDict):
        report.add(_span_of(document, "systems"), "bad-systems", "systems: a mapping of alias: URI")
    else:
        for alias, uri in extra.items():
            if not isinstance(uri, str) or ":" not in uri:
                report.add(extra.value_spans[alias], "bad-system", f"{alias}: a system is a URI")
            else:
                systems[alias] = uri
    facts = document.get("facts")
    if not isinstance(facts, PosDict):
        report.add(_span_of(document, "facts") if "facts" in document else top, "no-facts",
                   "`facts:` must map fact names to how each is read")
        return []
    folder = Path(path).parent
    found = []
    for name, body in facts.items():
        mapping = _fact(name, body, facts.key_spans[name], systems, folder, report)
        if mapping is not None:
            found.append(mapping)
    return found


def _fact(name: str, body: Any, where: Span, systems: dict[str, str], folder: Path,
          report: _Problems) -> FactMapping | None:
    if not isinstance(body, PosDict):
        report.add(where, "bad-mapping", f"{name}: expected a mapping (resource, code, pick, value...)")
        return None
    before = len(report.out)
    for key in body:
        if key not in _KEYS:
            close = difflib.get_close_matches(key, _KEYS, 1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            report.add(body.key_spans[key], "unknown-key", f"{name}: {key!r} is not a mapping key{hint}")
    resources = body.get("resource")
    resources = [resources] if isinstance(resources, str) else resources
    if not isinstance(resources, list) or not resources:
        report.add(_span_of(body, "resource") if "resource" in body else where, "no-resource",
                   f"{name}: resource: a FHIR resource type or a list of them")
        resources = []
    for i, kind in enumerate(resources):
        if kind not in RESOURCES:
            close = difflib.get_close_matches(str(kind), RESOURCES, 1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            at = resources.item_spans[i] if isinstance(resources, PosList) else _span_of(body, "resource")
            report.add(at, "unknown-resource", f"{name}: {kind!r} is not a resource type mappings "
                       f"read ({', '.join(RESOURCES)}){hint}")
    codes = None
    if "code" in body:
        codes = _code_set(name, body["code"], _span_of(body, "code"), systems, report)
    if "value_set" in body:
        if codes is not None:
            report.add(_span_of(body, "value_set"), "code-and-value-set", f"{name}: give code or value_set, not both")
        codes = _value_set(name, body["value_set"], _span_of(body, "value_set"), folder, systems, report)
    if codes is None and resources != ["Patient"] and resources:
        report.add(where, "no-code", f"{name}: which codes count? (code: or value_set:)")
    statuses = body.get("status")
    if statuses is not None:
        if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses) or not statuses:
            report.add(_span_of(body, "status"), "bad-status", f"{name}: status: a list of status codes")
            statuses = None
        else:
            statuses = tuple(statuses)
    verification = body.get("verification", list(NOT_A_DIAGNOSIS))
    excluded: tuple[str, ...] = NOT_A_DIAGNOSIS
    if isinstance(verification, PosDict) and isinstance(verification.get("exclude"), list):
        excluded = tuple(str(v) for v in verification["exclude"])
    elif "verification" in body:
        report.add(_span_of(body, "verification"), "bad-verification",
                   f"{name}: verification: {{exclude: [refuted, entered-in-error, ...]}}")
    days, anchor = None, None
    if "lookback" in body:
        lookback = body["lookback"]
        if not isinstance(lookback, PosDict) or not isinstance(lookback.get("days"), int) \
                or isinstance(lookback.get("days"), bool) or lookback["days"] < 0 \
                or not isinstance(lookback.get("anchor", ""), str) or set(lookback) - {"days", "anchor"}:
            report.add(_span_of(body, "lookback"), "bad-lookback",
                       f"{name}: lookback: {{days: N, anchor: DATE_FACT}} (anchor may be left out: "
                       "then --as-of)")
        else:
            days, anchor = lookback["days"], lookback.get("anchor")
    pick = body.get("pick", "latest" if resources != ["Patient"] else "latest")
    if pick not in PICKS:
        report.add(_span_of(body, "pick"), "bad-pick", f"{name}: pick: one of {', '.join(PICKS)}")
    value = None
    if pick == "exists":
        if "value" in body:
            report.add(_span_of(body, "value"), "value-with-exists", f"{name}: pick exists gives yes or no; no value")
    elif pick == "all":
        if "item" not in body and "value" in body:
            report.add(_span_of(body, "value"), "value-with-all", f"{name}: pick all reads a list: item: FIELD: VALUE")
    elif "value" not in body:
        report.add(where, "no-value", f"{name}: value: what the chosen resource gives")
    else:
        value = _value(name, body["value"], _span_of(body, "value"), systems, report)
    item: list[tuple[str, ValueRule]] = []
    if "item" in body:
        fields = body["item"]
        if pick != "all" or not isinstance(fields, PosDict):
            report.add(_span_of(body, "item"), "bad-item", f"{name}: item: (with pick all) FIELD: VALUE for each field")
        else:
            for field_name, rule in fields.items():
                parsed = _value(f"{name}.{field_name}", rule, fields.value_spans[field_name], systems, report)
                if parsed is not None:
                    item.append((field_name, parsed))
    complete = body.get("complete", False)
    if not isinstance(complete, bool):
        report.add(_span_of(body, "complete"), "bad-complete", f"{name}: complete: true or false")
        complete = False
    elif complete and pick not in ("exists", "all"):
        report.add(_span_of(body, "complete"), "bad-complete",
                   f"{name}: complete says absence means none: only for pick exists or all")
    if len(report.out) > before:
        return None
    return FactMapping(name, where, tuple(resources), codes, statuses, excluded, days, anchor, pick, value,
                       tuple(item), complete)


def _uri(alias: Any, systems: dict[str, str], where: Span, name: str, report: _Problems) -> str | None:
    if isinstance(alias, str) and alias in systems:
        return systems[alias]
    if isinstance(alias, str) and ":" in alias:
        return alias
    close = difflib.get_close_matches(str(alias), list(systems), 1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    report.add(where, "unknown-system", f"{name}: {alias!r} is not a code system alias or URI{hint}")
    return None


def _code_text(code: Any) -> str | None:
    if isinstance(code, bool):
        return None
    if isinstance(code, (int, str)) and str(code).strip():
        return str(code)
    return None


def _code_set(name: str, body: Any, where: Span, systems: dict[str, str], report: _Problems) -> CodeSet | None:
    if not isinstance(body, PosDict) or not body:
        report.add(where, "bad-code", f"{name}: code: SYSTEM: [CODE, ...] (a code ending * is a prefix)")
        return None
    exact: dict[str, set[str]] = {}
    prefixes: dict[str, list[str]] = {}
    for alias, codes in body.items():
        uri = _uri(alias, systems, body.key_spans[alias], name, report)
        codes = codes if isinstance(codes, list) else [codes]
        for code in codes:
            text = _code_text(code)
            if text is None:
                report.add(body.value_spans[alias], "bad-code", f"{name}: {code!r} is not a code")
            elif uri is not None and text.endswith("*"):
                prefixes.setdefault(uri, []).append(text[:-1])
            elif uri is not None:
                exact.setdefault(uri, set()).add(text)
    return CodeSet({s: frozenset(c) for s, c in exact.items()}, {s: tuple(p) for s, p in prefixes.items()})


def _value_set(name: str, ref: Any, where: Span, folder: Path, systems: dict[str, str],
               report: _Problems) -> CodeSet | None:
    """A local value-set file: a FHIR ValueSet (JSON: compose.include or expansion.contains)
    or YAML `SYSTEM: [CODE, ...]`, relative to the mapping file."""
    if not isinstance(ref, str):
        report.add(where, "bad-value-set", f"{name}: value_set: the path of a local value-set file")
        return None
    path = folder / ref
    try:
        if path.suffix.lower() == ".json":
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            pairs: list[tuple[str, str]] = []
            for include in (data.get("compose") or {}).get("include") or []:
                pairs += [(include["system"], str(c["code"])) for c in include.get("concept") or []]
            pairs += [(c["system"], str(c["code"])) for c in (data.get("expansion") or {}).get("contains") or []]
            if not pairs:
                raise ValueError("it lists no codes")
            exact: dict[str, set[str]] = {}
            for system, code in pairs:
                exact.setdefault(system, set()).add(code)
            return CodeSet({s: frozenset(c) for s, c in exact.items()})
        document = load_yaml(path)
    except RulesError as exc:
        report.out.extend(exc.problems)
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        report.add(where, "bad-value-set", f"{name}: value set {ref}: {getattr(exc, 'strerror', None) or exc}")
        return None
    return _code_set(name, document, where, systems, report)


def _table(name: str, body: Any, where: Span, systems: dict[str, str], report: _Problems,
           plain_keys: bool = False) -> CodeTable | None:
    """SYSTEM: {CODE: value} (or, for `gender`, {code: value})."""
    if not isinstance(body, PosDict) or not body:
        report.add(where, "bad-table", f"{name}: expected SYSTEM: {{CODE: VALUE, ...}}")
        return None
    if plain_keys:
        return CodeTable(tuple(("", str(k), v) for k, v in body.items()))
    entries = []
    for alias, codes in body.items():
        uri = _uri(alias, systems, body.key_spans[alias], name, report)
        if not isinstance(codes, PosDict):
            report.add(body.value_spans[alias], "bad-table", f"{name}: under {alias}: CODE: VALUE for each code")
            continue
        for code, value in codes.items():
            if uri is not None:
                entries.append((uri, str(code), value))
    return CodeTable(tuple(entries))


def _value(name: str, body: Any, where: Span, systems: dict[str, str], report: _Problems) -> ValueRule | None:
    if isinstance(body, str):
        if body in PLAIN_VALUES:
            return ValueRule(body)
        close = difflib.get_close_matches(body, PLAIN_VALUES + FORMS, 1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        report.add(where, "bad-value", f"{name}: {body!r} is not a value a mapping reads ("
                   f"{', '.join(PLAIN_VALUES)}, or one of {', '.join(FORMS)}){hint}")
        return None
    if not isinstance(body, PosDict) or len(set(body) & set(FORMS)) != 1:
        report.add(where, "bad-value", f"{name}: value: one of {', '.join(PLAIN_VALUES)}, or a mapping "
                   f"with one of {', '.join(FORMS)}")
        return None
    (form,) = set(body) & set(FORMS)
    span = _span_of(body, form)
    if form == "component":
        if set(body) - {"component", "value"}:
            report.add(where, "bad-value", f"{name}: component: CODES, value: quantity|number")
            return None
        codes = _code_set(name, body["component"], span, systems, report)
        part = body.get("value", "quantity")
        if part not in ("quantity", "number", "reference_high"):
            report.add(_span_of(body, "value"), "bad-value", f"{name}: a component gives quantity or number")
            return None
        return ValueRule("component", component=codes, part=part) if codes else None
    if set(body) != {form}:
        report.add(where, "bad-value", f"{name}: {form}: takes no other key")
        return None
    table = _table(name, body[form], span, systems, report, plain_keys=form == "gender")
    return ValueRule(form, table=table) if table else None
