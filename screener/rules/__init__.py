"""The rules stage: a trial's YAML file becomes a checked `Trial` and a durable-rules ruleset.

The modules are its steps, each importing only the ones before it:

    read       YAML text -> mappings and lists that keep each value's file:line:col
    parse      condition text -> expression tree, type-checked against the data dictionary
    functions  the generic derivation functions a rules file may name
    check      the whole rules document -> frozen `screener.model.Trial`, every problem collected
    compile    Trial -> durable-rules rule definitions (plain JSON data)

`screener.engine` runs what `compile` produces; nothing in this package touches durable-rules.
"""
