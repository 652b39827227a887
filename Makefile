# Two commands set everything up on a fresh machine:
#   make run    virtual environment, install, then the console on the embedded sample bus
#   make test   the same set-up, then the whole test suite
#   make test PYTHON=python3.12   the suite on another Python (3.11 and up), in a
#                                 .venv-3.12 of its own; .venv (CI's, 3.11) is left alone
PYTHON ?= python3
ifeq ($(origin PYTHON),command line)
VENV   ?= .venv-$(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
endif
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# The JavaScript tools the tests check the bus against, from npm, pinned by
# tests/js/package-lock.json and installed there, never globally: the
# official NATS service client (NATS micro discovery) and the official
# AsyncAPI parser (the schema export).
JSDIR   = tests/js

.PHONY: run test lint bench clean test-interop

$(STAMP): pyproject.toml setup.py $(wildcard bus/_core/_speedups*.[ch] bus/_observe/_speedups*.[ch]) $(JSDIR)/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[console,dev]'
	if command -v npm >/dev/null; then npm ci --prefix $(JSDIR) --no-audit --no-fund --loglevel=error; fi
	touch $(STAMP)

# --nats '': the in-process demo (or a bus on this machine), whatever BUS_NATS_URL says.
run: $(STAMP)
	$(BIN)/busctl tui --nats ''

test: $(STAMP)
	$(BIN)/python -m pytest

# The checks against large third-party tools, installed from the package index.
test-interop: $(STAMP)
	$(BIN)/python -m pytest -m interop

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/busctl bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis $(JSDIR)/node_modules bus/_core/_speedups.*.so bus/_observe/_speedups_otlp.*.so
