"""screener: rule-based clinical-trial eligibility screening.

The pipeline, one package per stage: `sources` (table readers, CSV rows, FHIR, merging a
candidate's facts) -> `rules` (YAML criteria read, checked and compiled into durable-rules
rulesets) -> `engine` (one candidate's facts -> `Result`) -> `run` (batch, portfolio, workers,
store) and `dialog` -> `audit` (signed traces); `cli` sits on top.
"""

__version__ = "0.1.0"
