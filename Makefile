# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PLUGINS := $(wildcard plugins/*/pyproject.toml)

.PHONY: run test lint bench clean fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml $(PLUGINS)
	$(BIN)/pip install --quiet -e '.[test]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/triggerbook run $(if $(CONFIG),--config $(CONFIG))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# schemathesis against the real engine alone (it also runs in `make test`).
fuzz: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_schemathesis.py

bench: $(STAMP)
	$(BIN)/triggerbook bench book
	$(BIN)/triggerbook bench store
	$(BIN)/triggerbook bench feed

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
