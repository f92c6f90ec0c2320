# Fresh machine: `make demo` (set up + run the main job on the bundled examples)
#                `make test` (set up + run the test suite).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast bench bench-features clean

setup: $(STAMP)

# requirements-dev.txt is the full pinned set (compiled by uv from requirements*.in).
$(STAMP): requirements.txt requirements-dev.txt setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

demo: setup
	$(BIN)/ser features --input examples --output demo_out/features

test: setup
	$(BIN)/python -m pytest -q

bench-features: setup
	$(BIN)/python benchmarks/features_throughput.py

bench: bench-features

clean:
	rm -rf demo_out .pytest_cache build *.egg-info
