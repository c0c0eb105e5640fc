# Two entry points, both from a fresh machine with Python 3.11 and make:
#   make screen-sample   set up, then batch-screen the shipped sample candidates
#   make test            set up, then run the test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: setup screen-sample test bench fuzz fuzz-each catalogues clean

# setuptools' advice about editable installs goes to $(VENV)/install.log, shown only when the
# install fails.
$(BIN)/screener: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "installing screener and its dependencies into $(VENV)"
	@$(BIN)/pip install --quiet -e '.[test,report,dask]' > $(VENV)/install.log 2>&1 || \
	  { cat $(VENV)/install.log >&2; exit 1; }
	touch $@

setup: $(BIN)/screener

# Exit status 1 means "screened, and some rows are errors": the sample has one on purpose.
screen-sample: setup
	@umask 077; $(BIN)/screener batch examples/candidates.csv -o screened.jsonl; \
	  status=$$?; [ $$status -le 1 ] || exit $$status

# A worker per core, each taking whole test files (their module fixtures, a cluster or a
# trial's compiled rules, are built once per file).
test: setup
	$(BIN)/python -m pytest -n auto --dist loadfile

bench: setup
	$(BIN)/python benchmarks/batch_throughput.py

# Coverage-guided fuzzing of the batch readers (atheris); new inputs collect in .fuzz-corpus/.
# Any crash is saved as crash-* and stops the run. FUZZ_SECONDS=60 make fuzz for a short one.
FUZZ_SECONDS ?= 600
fuzz: setup
	$(BIN)/pip install --quiet -e '.[test,fuzz]'
	mkdir -p .fuzz-corpus
	$(BIN)/python fuzz/fuzz_batch.py -max_total_time=$(FUZZ_SECONDS) -timeout=30 -rss_limit_mb=3072 \
	  .fuzz-corpus fuzz/corpus

# Every reader in turn, FUZZ_SECONDS each (fuzz/targets.py: candidate files, rules files,
# units, typed answers, keys, traces, sessions), from its seeds in fuzz/seeds/<target>/.
# New inputs collect in .fuzz-corpus/<target>/; a crash is saved there as crash-* and stops
# the run. FUZZ_TARGETS="trace session" make fuzz-each for some of them.
FUZZ_TARGETS ?= csv jsonl json yaml rules unit answer key trace trace-rechained session
fuzz-each: setup
	$(BIN)/pip install --quiet -e '.[test,fuzz]'
	for target in $(FUZZ_TARGETS); do \
	  mkdir -p .fuzz-corpus/$$target && \
	  $(BIN)/python fuzz/fuzz_inputs.py $$target -max_total_time=$(FUZZ_SECONDS) -timeout=30 \
	    -rss_limit_mb=3072 -artifact_prefix=.fuzz-corpus/$$target/ .fuzz-corpus/$$target \
	    fuzz/seeds/$$target || exit 1; \
	done

# The screener's own wording: collect the messages (Python and letter templates, babel.cfg), merge them into each language's .po
# (translate the new, empty ones there), then compile the .mo files the package ships.
catalogues: setup
	$(BIN)/pybabel extract -F babel.cfg -k tr --no-default-keywords --no-location --sort-output \
	  --omit-header -o screener/locale/screener.pot .
	$(BIN)/pybabel update -i screener/locale/screener.pot -d screener/locale -D screener --ignore-obsolete --no-fuzzy-matching
	$(BIN)/pybabel compile -d screener/locale -D screener

clean:
	rm -rf $(VENV) screened.jsonl .fuzz-corpus
