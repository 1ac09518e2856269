# braze-sends: `make demo` and `make test` are all a fresh clone needs; each installs what it uses.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .uv/bin/uv
BIN := .venv/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv
export RUNTIME__DLTHUB_TELEMETRY := false

.PHONY: install demo run test lint format bench clean reliability audit schema dashboard dictionary chromium
RELIABILITY_TESTS := tests/test_fault_matrix.py tests/test_crash_matrix.py tests/test_hostile_input.py

# uv itself lives in its own small venv, so the project venv holds exactly the lock file.
$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The project venv: the locked dependencies, the extras the tests exercise, dev tools, the project.
EXTRAS := --extra postgres --extra delta --extra dashboard
.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen $(EXTRAS) --python $(PYTHON)
	touch $@

install: .venv/.installed

demo: install ## Load the built-in Braze sandbox's sends into braze_sends.duckdb
	$(BIN)/braze-sends demo

run: install ## Pull every due send (configure .dlt/ first); ARGS="--sends sends.csv"
	$(BIN)/braze-sends run $(ARGS)

test: install chromium ## The whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The dashboard test drives Debian's headless Chromium (browser downloads don't work everywhere).
chromium:
	@[ -x /usr/bin/chromium ] || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

dashboard: install ## Serve the dashboard of braze_sends.duckdb on http://127.0.0.1:8050 (after `make demo`)
	$(BIN)/python -m braze_sends.dashboard --db braze_sends.duckdb $(ARGS)

dictionary: install ## Regenerate docs/data_dictionary.md from a sandbox load's schema
	$(BIN)/python -m braze_sends.dictionary docs/data_dictionary.md

# schemas/import: the pinned types (from columns.py); schemas/export: dlt's schema after a sandbox
# load. The tests fail until these are rewritten after a change of the tables: review, then commit.
schema: install ## Rewrite schemas/ from the code (after changing columns, tables or dlt)
	$(BIN)/python -m braze_sends.schema --dir schemas

lint: install
	$(BIN)/ruff check pipelines tests benchmarks
	$(BIN)/ruff format --check pipelines tests benchmarks

format: install
	$(BIN)/ruff format pipelines tests benchmarks
	$(BIN)/ruff check --fix pipelines tests benchmarks

lock: | $(UV) ## Re-resolve uv.lock after changing pyproject.toml
	$(UV) lock --python $(PYTHON)

# Every locked package (all extras, dev tools), checked against PyPI's vulnerability data.
# --strict: a package that could not be checked fails the audit instead of passing unseen.
audit: install ## pip-audit of uv.lock; accepted findings: README, "Dependency audit"
	$(BIN)/pip-audit --strict --disable-pip --progress-spinner off \
		-r <($(UV) export --frozen --all-extras --no-emit-project --format requirements-txt --quiet) \
	|| { echo 'make audit: a vulnerability, or a package pip-audit could not check (it needs' \
		"PyPI's per-release JSON API): see above, and README, Dependency audit" >&2; exit 1; }

clean:
	rm -rf .venv .uv .pytest_cache .ruff_cache .hypothesis braze_sends.duckdb demo_sends.csv

reliability: install ## The fault matrix, crash recovery and hostile input, with the report table
	$(BIN)/python -m pytest -q $(RELIABILITY_TESTS)

bench: install ## Throughput, flatten+load speed, memory and baselines, side by side (a few minutes)
	$(BIN)/python -m benchmarks.bench
