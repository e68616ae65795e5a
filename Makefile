# Two commands for a newcomer on a fresh machine:
#   make run    set up, then start the example order service (examples/orders)
#   make test   set up, then lint, type-check and run every test (Python, TypeScript, browser)
# Both create .venv, install what they need from pyproject.toml and extension/package-lock.json,
# and build the canvas bundle (flownb/static/canvas.js).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BUNDLE := flownb/static/canvas.js
EXT_SOURCES := $(shell find extension/src -type f 2>/dev/null) extension/build.mjs

.PHONY: setup run test lint typecheck pytest vitest browser bench notebooks clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "flownb needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

extension/node_modules/.package-lock.json: extension/package.json extension/package-lock.json
	npm ci --prefix extension --no-audit --no-fund

$(BUNDLE): extension/node_modules/.package-lock.json $(EXT_SOURCES)
	npm run --prefix extension build

setup: $(STAMP) $(BUNDLE)

run: setup
	$(BIN)/flownb run examples/orders/orders.yaml

lint: setup
	$(BIN)/ruff check flownb tests bench
	$(BIN)/ruff format --check flownb tests bench
	npm run --prefix extension lint

typecheck: setup
	$(BIN)/mypy
	npm run --prefix extension typecheck

vitest: setup
	npm run --prefix extension test

# Browser tests drive Debian's Chromium; never a downloaded browser.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

pytest: setup browser
	$(BIN)/pytest -q

test: lint typecheck vitest pytest

# Run the demo notebooks again in place, to refresh the outputs nbval compares against
# (the AI notebook with its fake AI server, whatever the environment holds).
notebooks: setup
	cd notebooks && ANTHROPIC_API_KEY= ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.store_widget_state=False --ExecutePreprocessor.record_timing=False \
		*.ipynb

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache extension/node_modules $(BUNDLE)
