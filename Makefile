# Fresh machine: `make demo` (set up + run the main job on the bundled examples)
#                `make test` (set up + run the test suite).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser demo test bench bench-features bench-train bench-score bundled-model clean

setup: $(STAMP)

# requirements-dev.txt is the full pinned set (compiled by uv from requirements*.in).
$(STAMP): requirements.txt requirements-dev.txt setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

# The main job on the bundled examples: feature pipeline, a short training run (a tiny
# network, to show the trainer end to end), then bulk scoring with the bundled model.
demo: setup
	@echo "== 1/3 ser features: examples/ -> demo_out/features (TFRecord shards)"
	@$(BIN)/ser features --input examples --output demo_out/features
	@echo "== 2/3 ser train: a tiny network for two epochs -> demo_out/model"
	@$(BIN)/ser train --features demo_out/features --output demo_out/model --set model.backbone=densenet_tiny \
		--set training.epochs=2 --set training.batch_size=4 --set training.warmup_epochs=0
	@echo "== 3/3 ser score: the bundled model on the examples -> demo_out/scores.*.parquet"
	@$(BIN)/ser score --input 'examples/cremad/AudioWAV/*.opus' --output demo_out/scores --windows --summary

# Debian's Chromium for the browser test (the Python playwright package drives it).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Test files run in parallel, one process per core (at most 4), each file's tests in one process
# (they share its fixtures).
test: setup browser
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

bench-features: setup
	$(BIN)/python benchmarks/features_throughput.py

bench-train: setup   # needs `ser features` output in out/features
	$(BIN)/python benchmarks/train_throughput.py --features out/features

bench-score: setup
	$(BIN)/python benchmarks/score_throughput.py

bench: bench-features bench-train bench-score

# The shipped model, from the corpora (hours of CPU): features; the recipe's 5 speaker folds and its
# leave-one-corpus-out folds (the committed ones under $(CV) and $(CV_CORPUS) are read back, not
# retrained); a refit on every speaker that carries both reports' figures and the speaker folds'
# calibration; then the bundled examples' expected table is rewritten.
CORPORA ?= ../shared/corpora
CV ?= benchmarks/crossval/adversary-e12
CV_CORPUS ?= benchmarks/crossval/loco-adversary-e12
SCHEDULE ?= --set training.epochs=12
bundled-model: setup
	$(BIN)/ser features --input ravdess=$(CORPORA)/ravdess --input cremad=$(CORPORA)/cremad \
		--input tess=$(CORPORA)/tess --input savee=$(CORPORA)/savee --output out/features
	$(BIN)/ser crossval --features out/features --output $(CV) $(SCHEDULE)
	$(BIN)/ser crossval --features out/features --output $(CV_CORPUS) --by_corpus $(SCHEDULE)
	$(BIN)/ser train --features out/features --output out/bundled-model --train_on all $(SCHEDULE) \
		--calibration $(CV)/crossval.json --crossval $(CV)/crossval.json --crossval $(CV_CORPUS)/crossval.json
	rm -rf ser_model/bundled_model && cp -r out/bundled-model ser_model/bundled_model
	SER_UPDATE_EXPECTED=1 $(BIN)/python -m pytest -q tests/test_bundled_model.py

clean:
	rm -rf demo_out .pytest_cache build *.egg-info
