# The two commands of the README: `make up` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: up test lint bench-quick chaos clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Processes per service: e.g. make up DOSSIER_PROCESSES=2 GATEWAY_PROCESSES=2 (or PROCESSES=2 for all)
up: $(STAMP)
	$(PY) -m deploy.local up

test: $(STAMP)
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
