# Two commands set everything up on a fresh machine:
#   make run    virtual environment, install, then the console on the embedded sample bus
#   make test   the same set-up, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# The official AsyncAPI parser (JavaScript, from npm), which the schema tests
# run the bus's AsyncAPI document through; installed here, never globally.
NODE_DIR = .ci/node
NODE_STAMP = $(NODE_DIR)/.installed
ASYNCAPI_PARSER = @asyncapi/parser@3.6.6

.PHONY: run test lint bench clean node-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): Makefile
	@if command -v npm >/dev/null 2>&1; then \
		npm install --prefix $(NODE_DIR) --no-save --no-audit --no-fund --loglevel=error \
			$(ASYNCAPI_PARSER) && touch $@; \
	else \
		echo "npm not found: the AsyncAPI parser test will be skipped"; \
	fi

node-deps: $(NODE_STAMP)

run: $(STAMP)
	$(BIN)/busctl tui

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/busctl bench

clean:
	rm -rf $(VENV) $(NODE_DIR) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
