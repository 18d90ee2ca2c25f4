# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PLUGINS := $(wildcard plugins/*/pyproject.toml)

.PHONY: run test lint bench clean fuzz vendor

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml $(PLUGINS)
	$(BIN)/pip install --quiet -e '.[test]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $(STAMP)

# The page's chart library (issue 16): `npm ci` against frontend/'s committed lockfile, then the
# IIFE build (sets window.LightweightCharts) and its license files copied into the served folder
# (web/static/vendor/, not committed). Runs again only when the lockfile is newer than the copy.
# The npm package ships dist/ and LICENSE only: its NOTICE (the attribution the page shows) is
# kept in frontend/, taken from the library's repository. Without npm the page runs, chartless.
VENDOR := web/static/vendor
LWC    := frontend/node_modules/lightweight-charts
VENDORED := $(VENDOR)/lightweight-charts.standalone.production.js \
	$(VENDOR)/lightweight-charts.LICENSE.txt $(VENDOR)/lightweight-charts.NOTICE.txt

vendor: $(VENDORED)

$(VENDORED) &: frontend/package-lock.json frontend/lightweight-charts.NOTICE.txt
	@if command -v npm >/dev/null 2>&1; then \
		set -e; \
		(cd frontend && npm ci --loglevel=error); \
		mkdir -p $(VENDOR); \
		cp $(LWC)/dist/lightweight-charts.standalone.production.js $(VENDOR)/; \
		cp $(LWC)/LICENSE $(VENDOR)/lightweight-charts.LICENSE.txt; \
		cp frontend/lightweight-charts.NOTICE.txt $(VENDOR)/lightweight-charts.NOTICE.txt; \
		echo "lightweight-charts copied into $(VENDOR)/"; \
	else \
		echo "npm not found: the page will run without its chart"; \
	fi

# The browser tests' Chromium (tests/web/browser/): Debian's, installed when missing (Playwright
# drives it through executable_path; `playwright install` would download a browser: not here).
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@SUDO=; if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi; \
	set -e; \
	$$SUDO apt-get update; \
	$$SUDO env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends chromium chromium-driver

run: $(STAMP) vendor
	$(BIN)/triggerbook run $(if $(CONFIG),--config $(CONFIG))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint vendor $(CHROMIUM)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# schemathesis against the real engine alone (it also runs in `make test`).
fuzz: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_schemathesis.py

bench: $(STAMP)
	$(BIN)/triggerbook bench book
	$(BIN)/triggerbook bench store
	$(BIN)/triggerbook bench feed

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis frontend/node_modules $(VENDOR)
