# The two commands a user needs: `make demo` and `make test`. Everything else supports them.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/synapseops
PYTEST_ARGS ?=

.PHONY: install demo down status test test-unit test-integration bench lint clean-data

$(VENV)/.installed: pyproject.toml
	bash scripts/bootstrap-system.sh
	bash scripts/bootstrap-browser.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## Start the whole local stack in the background, send sample traffic, print where to look.
demo: install
	SYNAPSEOPS_AGGREGATION_TICKS_PER_S=$${SYNAPSEOPS_AGGREGATION_TICKS_PER_S:-2} $(CLI) up
	$(CLI) demo

down:
	@if [ -x $(CLI) ]; then $(CLI) down; else echo "nothing to stop (no $(VENV))"; fi

status: install
	$(CLI) status

## Unit, integration and end-to-end tests; brings up the broker and database it needs.
test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS) tests

test-unit: install
	$(VENV)/bin/pytest $(PYTEST_ARGS) tests/unit

test-integration: install
	$(VENV)/bin/pytest $(PYTEST_ARGS) tests/integration

## Benchmarks print figures; they are not tests and assert nothing about time.
bench: install
	$(PY) -m bench

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# As root the PostgreSQL clusters live outside .data (see the README): remove them first.
clean-data: down
	@if [ -x $(CLI) ]; then $(CLI) db remove; SYNAPSEOPS_DATA_DIR=$(CURDIR)/.data/test $(CLI) db remove; fi
	rm -rf .data
