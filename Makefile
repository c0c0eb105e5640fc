# Two entry points, both from a fresh machine with Python 3.11 and make:
#   make screen-sample   set up, then batch-screen the shipped sample candidates
#   make test            set up, then run the test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: setup screen-sample test bench clean

$(BIN)/screener: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/screener

# Exit status 1 means "screened, and some rows are errors": the sample has one on purpose.
screen-sample: setup
	umask 077; $(BIN)/screener batch examples/candidates.csv -o screened.jsonl; \
	  status=$$?; [ $$status -le 1 ] || exit $$status
	@echo "results, one per candidate: screened.jsonl"

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/batch_throughput.py

clean:
	rm -rf $(VENV) screened.jsonl
