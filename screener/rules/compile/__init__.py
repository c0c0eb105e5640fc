"""Compile a Trial into a durable-rules ruleset definition (plain JSON data).

Each criterion has three conditions, one per Kleene outcome, that partition every possible
snapshot: exactly one of `met`, `not_met`, `unknown` holds. The passing outcome's is left out
of the ruleset: it holds when neither other rule fires (most criteria pass, and a rule that
fires costs an engine round trip). For an unknown criterion,
one `missing` rule per absent fact fires when answering that fact could move the criterion.
Each derivation becomes one rule that fires when its inputs are present.

Conditions read one fact only (the candidate's snapshot) and always test its kind field:
cross-fact comparisons and kind-less conditions are durable-rules traps (see engine.py).
Values are encoded so the engine compares like with like: decimals and quantities as exact
half-step integers (see `encode`), dates as day numbers, never floats or mixed types.

The steps, one module each: `encode` (facts and values in the engine's form), `normal` (normal
forms within the engine's limits), `parts` (conditions cut into Parts), `kleene` (three-valued
truth conditions), `rules` (criteria and derivations as rules, fitted into rulesets) and
`network` (the engine's discrimination network, checked against its limits).
"""
from __future__ import annotations

from screener.rules.compile.encode import (
    Cond, DONE_PREFIX, FIELD_PREFIX, FINAL, KIND, OPEN, PART_PREFIX, PRI_CRITERION, PRI_DERIVE, PRI_MISSING,
    PRI_OPEN, PRI_PART, PRI_SEAL, PRI_SEAL_PARTS, PRI_SEEN, SEALED, SNAPSHOT, encode, encoder, engine_places, field,
)
from screener.rules.compile.normal import (
    GROUPS, MAX_BETAS, MAX_CHILDREN, MAX_CLAUSES, MAX_FIELDS, MAX_NEX, MAX_OR_CLAUSES, MAX_OR_WIDTH,
    MAX_RULES, MAX_STACK, TooComplex, to_cnf,
)
from screener.rules.compile.parts import Part, decompose, parts_of, split
from screener.rules.compile.rules import (
    MAX_FAN_OUT, MAX_PLAIN_DEPTH, MAX_PLAIN_SIZE, compile_rulesets, compile_trial, fan_out, lower_criteria,
    missing_conditions,
)

__all__ = [
    "Cond", "DONE_PREFIX", "FIELD_PREFIX", "FINAL", "KIND", "OPEN", "PART_PREFIX", "PRI_CRITERION", "PRI_DERIVE",
    "PRI_MISSING", "PRI_OPEN", "PRI_PART", "PRI_SEAL", "PRI_SEAL_PARTS", "PRI_SEEN", "SEALED", "SNAPSHOT", "encode",
    "encoder", "engine_places", "field", "GROUPS", "MAX_BETAS", "MAX_CHILDREN", "MAX_CLAUSES", "MAX_FIELDS", "MAX_NEX",
    "MAX_OR_CLAUSES", "MAX_OR_WIDTH", "MAX_RULES", "MAX_STACK", "TooComplex", "to_cnf", "Part", "decompose",
    "parts_of", "split", "MAX_FAN_OUT", "MAX_PLAIN_DEPTH", "MAX_PLAIN_SIZE", "compile_rulesets",
    "compile_trial", "fan_out", "lower_criteria", "missing_conditions",
]
