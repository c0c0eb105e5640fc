"""The audit stage: what a screening leaves behind and how it is checked.

    trace      writes the append-only, hash-chained decision record of one screening
    chain      reads a trace back and checks its chain
    replay     replays a trace's facts through the rules file it names
    explain    renders the reasoning of a trace as a tree
    letter     renders the eligibility letter (Markdown, HTML) from a verified trace
    letter_check  checks a letter against the trace it names, line by line
    keys       Ed25519 key pairs, fingerprints, the trusted-keys folder
    sign       signature records after the end record, and checking them
    artifacts  per-candidate trace and letter files for batch and dialog
    cli        the `verify` and `explain` commands
    signing_cli  the `keygen` and `sign` commands and the `--sign-key` options
"""
