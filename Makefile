# The two commands of the README: `make up` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: up test lint bench-quick chaos clean docs-assets

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The AsyncAPI viewer of /docs/events (npm @asyncapi/react-component, pinned version and sha512)
# into .assets/docs/; a quick check once it is there. Alone it fails when it cannot install;
# before up and test it prints why and lets them go on (/docs/events then answers 503, and its
# browser test fails).
docs-assets: $(STAMP)
	$(PY) -m deploy.docs_assets $(DOCS_ASSETS_FLAGS)

up test: DOCS_ASSETS_FLAGS = --warn-only

# Processes per service: e.g. make up DOSSIER_PROCESSES=2 GATEWAY_PROCESSES=2 (or PROCESSES=2 for all);
# CPU priority per service: e.g. make up ROUTER_NICE=0 (the router and identity run at 10)
up: $(STAMP) docs-assets
	$(PY) -m deploy.local up

test: $(STAMP) docs-assets
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

bench-quick: $(STAMP)
	$(PY) -m bench store --quick

# The chaos suite's full form (tests/chaos): each fault on its own system under load, then
# the invariants; e.g. make chaos CHAOS_ARGS="--filings 300 --clients 10 -s kill-router"
chaos: $(STAMP)
	$(PY) -m tests.chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .run .pytest_cache
