# The two commands of the README: `make demo` (the main job on the embedded stack) and
# `make test` (the test suite). Each creates or refreshes the virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint dev bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/journey demo

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check engine connectors tests bench
	$(BIN)/ruff format --check engine connectors tests bench
	$(BIN)/mypy

dev: $(STAMP)
	$(BIN)/journey dev

bench: $(STAMP)
	$(BIN)/python -m bench.runtime

clean:
	rm -rf $(VENV) .journey .pytest_cache .mypy_cache .ruff_cache
