# Meterline developer commands (the README has the two a newcomer needs).
# make lint       ruff (configured in pyproject.toml) and the layering check
# make test       the fast tier: pure functions and in-process DuckDB, no CLI runs, no browser
# make test-full  everything: what CI and the README run
# make imports    the import graph, floor by floor

VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lint test test-full imports

install:
	python3.11 -m venv $(VENV) && $(BIN)/pip install -q -e '.[dev]'

lint:
	$(BIN)/ruff check orchestration tests benchmarks
	$(BIN)/python tests/import_graph.py --check

test:
	$(BIN)/pytest -q -m "not e2e and not browser"

test-full:
	$(BIN)/pytest

imports:
	$(BIN)/python tests/import_graph.py
