"""screener: rule-based clinical-trial eligibility screening.

The pipeline, one module per stage: `loader` (YAML with positions) -> `trial` (validated,
frozen model) -> `compiler` (durable-rules ruleset) -> `engine` (one candidate's facts ->
`Result`) ; `batch`, `dialog`, `trace`, `letter` and `cli` sit on top.
"""

__version__ = "0.1.0"
