# Two commands set everything up on a fresh machine:
#   make run    virtual environment, install, then the console on the embedded sample bus
#   make test   the same set-up, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# The official NATS service client (npm), which the tests use to check that
# bus services answer NATS micro discovery.
JSDIR   = tests/bus/nats/js

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml $(JSDIR)/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[console,dev]'
	if command -v npm >/dev/null; then npm ci --prefix $(JSDIR) --no-audit --no-fund --loglevel=error; fi
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/busctl tui

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/busctl bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis $(JSDIR)/node_modules
