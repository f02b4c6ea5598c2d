# `make demo` and `make test` set everything up in .venv/ and then do their job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast browser lint bench compare gpu-wheels weights clean

$(STAMP): pyproject.toml plugins/shapes/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,dask,maps]' -e plugins/shapes
	touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/atlas build

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --quiet .
	$(BIN)/python -m pytest

# The inner loop: everything but the end-to-end tests (about 2 minutes on 2 cores).
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not e2e"

# Debian's Chromium for the browser tests; installed when missing and we may use apt.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "note: chromium is not installed; the browser tests will be skipped"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/build_demo.py
	$(BIN)/python bench/scale.py

# lucent and torch-dreams, timed against feature-atlas in an environment of their own.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml constraints.txt bench/compare-requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -c constraints.txt -e .
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-deps -r bench/compare-requirements.txt
	touch $(BENCH_STAMP)

compare: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/compare.py

# Wheels for an offline CUDA machine (Python 3.12 there): the project, the demo plugin and
# the compared tools; bench/gpu_run.sh installs them there and runs the GPU checks.
gpu-wheels: $(STAMP)
	rm -rf .whl
	$(BIN)/python -m pip wheel -q --no-deps -w .whl . plugins/shapes
	$(BIN)/python -m pip download -q --no-deps -d .whl --python-version 3.12 \
	  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --only-binary=:all: \
	  -r bench/compare-requirements.txt

weights: $(STAMP)
	$(BIN)/python -m atlas_shapes.train

clean:
	rm -rf $(VENV) $(BENCH_VENV) .whl site .pytest_cache
