# Two commands on a fresh machine: `make run` and `make test`. Both build .venv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test lint bench bench-scale fuzz soak lock

install: $(VENV)/.installed

# The versions of requirements.lock (as the Docker image has them); a dependency
# added to pyproject.toml and not locked yet still installs, at its newest.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

# Pin every dependency (and theirs) anew after changing pyproject.toml.
lock: install
	$(BIN)/pip-compile --quiet --all-extras --strip-extras --allow-unsafe --no-emit-index-url \
		--no-emit-find-links --no-emit-trusted-host --output-file requirements.lock pyproject.toml

run: install
	$(BIN)/payfeed serve --demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy schemas store ingest campaign demo app

test: lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/ingest.py

# schemathesis over /openapi.json against a real server, as admin and provider: no 5xx.
fuzz: install
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,fuzz]'
	$(BIN)/python -m tests.fuzz_api

bench-scale: install
	$(BIN)/python bench/scale.py --order time
	$(BIN)/python bench/scale.py --order scattered

# 8 providers pushing batches that share new payers for a minute: no 5xx, rollups verify clean.
soak: install
	$(BIN)/python bench/soak.py
