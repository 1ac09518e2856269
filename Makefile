# braze-sends: `make demo` and `make test` are all a fresh clone needs; each installs what it uses.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .uv/bin/uv
BIN := .venv/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv
export RUNTIME__DLTHUB_TELEMETRY := false

.PHONY: install demo run test lint format bench clean

# uv itself lives in its own small venv, so the project venv holds exactly the lock file.
$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The project venv: the locked dependencies, the extras the tests exercise, dev tools, the project.
EXTRAS := --extra postgres --extra delta
.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen $(EXTRAS) --python $(PYTHON)
	touch $@

install: .venv/.installed

demo: install ## Load the built-in Braze sandbox's sends into braze_sends.duckdb
	$(BIN)/braze-sends demo

run: install ## Pull every due send (configure .dlt/ first); ARGS="--sends sends.csv"
	$(BIN)/braze-sends run $(ARGS)

test: install ## The whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check pipelines tests benchmarks
	$(BIN)/ruff format --check pipelines tests benchmarks

format: install
	$(BIN)/ruff format pipelines tests benchmarks
	$(BIN)/ruff check --fix pipelines tests benchmarks

lock: | $(UV) ## Re-resolve uv.lock after changing pyproject.toml
	$(UV) lock --python $(PYTHON)

clean:
	rm -rf .venv .uv .pytest_cache .ruff_cache .hypothesis braze_sends.duckdb demo_sends.csv
