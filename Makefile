# Two entry points: `make demo` (run the default offline suite) and `make test` (the test suite).
# Both create .venv when it is missing and install the pinned environment into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
STAMP := $(VENV)/.installed

.PHONY: demo test lint report dry-run clean lock

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23.2"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)
	$(BIN)/snakemake --report results/report.html
	@echo "Done: results/metrics.csv, results/figures/, results/report.html"

report: $(STAMP)
	$(BIN)/snakemake --report results/report.html

dry-run: $(STAMP)
	$(BIN)/snakemake --dry-run --cores $(CORES)

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/ruff check .

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -ra tests

lock: $(STAMP)
	head -n 2 requirements.lock > requirements.lock.new
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^medprobe' >> requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf results data logs .snakemake
