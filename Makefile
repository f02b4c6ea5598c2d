# `make demo` and `make test` set everything up in .venv/ and then do their job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench weights clean

$(STAMP): pyproject.toml plugins/shapes/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]' -e plugins/shapes
	touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/atlas build

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/build_demo.py

weights: $(STAMP)
	$(BIN)/python -m atlas_shapes.train

clean:
	rm -rf $(VENV) site .pytest_cache
