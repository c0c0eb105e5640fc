"""The rules stage: a trial's YAML file becomes a checked `Trial` and a durable-rules ruleset.

The modules are its steps, each importing only the ones before it:

    read         YAML text -> mappings and lists that keep each value's file:line:col
    units        UCUM codes: parsing, dimensions, conversion factors (pint + ucumvert)
    parse        expression text -> syntax tree (grammar and limits)
    typecheck    syntax tree -> `screener.model` expression, names resolved, types and units checked
    functions    the generic derivation functions a rules file may name
    evaluate     the exact value of an expression over one candidate's facts (Kleene, Decimal)
    formulas     a formula's result as a value of its derived fact
    derivations  checks across derivations: formula types, cycles, band tables
    check        the whole rules document -> frozen `screener.model.Trial`, every problem collected
    terms        the hidden terms of conditions the engine cannot compare directly
    compile      Trial -> durable-rules rule definitions (plain JSON data)

`screener.engine` runs what `compile` produces, calling `evaluate` only inside the actions of
the rules that fired; nothing in this package touches durable-rules.
"""
