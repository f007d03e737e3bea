# Two set-up commands work on a fresh machine: `make compare` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A packaged config's name (`fmnist configs`) or a YAML path.
CONFIG ?= baseline
SEEDS ?= 0 1 2
EPOCHS ?=
# How `make compare` runs its trainings (docs/scale.md): JOBS=2 (two at once here, one core each),
# EXECUTOR=ray (a local Ray instance, or RAY_ADDRESS=HOST:PORT of a cluster), THREADS per run.
JOBS ?=
EXECUTOR ?=
# The engines `make compare` trains (default keras,lightning): say ENGINES=keras,keras-jax,keras-torch,lightning.
BACKENDS ?=
ENGINES ?= $(BACKENDS)  # BACKENDS=: the name it had before
RAY_ADDRESS ?=
THREADS ?=
OUT ?= reports/$(basename $(notdir $(CONFIG)))
TB_HOST ?= 127.0.0.1
MODELS ?=
export FMNIST_DATA_DIR ?= $(abspath ../shared/data/fashion-mnist)

.PHONY: help venv lint test test-slow test-all compare parity benchmark train-keras train-lightning tensorboard serve serve-bench screenshot gpu-bundle clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the project with its test extras

# Two pytest workers (pytest-xdist), a test file each at a time: most of a test's time is a fresh
# process importing a framework, which one core does while the other trains. PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
# pytest's exit code 5 means it collected no test: a failure here (a suite must run), said plainly.
PYTEST = $(BIN)/python -m pytest $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile) $(1) || { s=$$?; [ $$s -ne 5 ] || echo "pytest collected no tests (exit 5)"; exit $$s; }

lint: $(STAMP)  ## ruff: lint and formatting (settings in pyproject.toml); `ruff format .` fixes the formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP)  ## run the default test suite (quick: slow tests are left out)
	$(call PYTEST,)

test-slow: $(STAMP)  ## only the slow tests: two-process trainings (Lightning DDP, Keras MirroredStrategy), resume after SIGKILL and Ctrl-C, fmnist serve in Chromium and under load
	$(call PYTEST,-m slow)

test-all: $(STAMP)  ## run every test, the slow ones too
	$(call PYTEST,-m '')

compare: $(STAMP)  ## the main job: train both engines over 3 seeds on CONFIG and write the parity report (JOBS=2, EXECUTOR=ray: docs/scale.md)
	$(BIN)/fmnist compare --config $(CONFIG) --out $(OUT) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(ENGINES),--engines $(ENGINES)) \
		$(if $(JOBS),--jobs $(JOBS)) $(if $(EXECUTOR),--executor $(EXECUTOR)) $(if $(RAY_ADDRESS),--ray-address $(RAY_ADDRESS)) $(if $(THREADS),--threads $(THREADS))

parity: $(STAMP)  ## numerical parity checks (structure, weight transfer, lockstep) on CONFIG
	$(BIN)/fmnist parity --config $(CONFIG) --out reports/parity-$(basename $(notdir $(CONFIG)))

BENCH_VARIANTS ?= eager,channels_last,bf16,channels_last+bf16,compile,tf,tf-bf16

benchmark: $(STAMP)  ## speed of both engines, their variants (BENCH_VARIANTS), and time to 91% on a fixed budget, 5 seeds each (about 1 h 15 min on 2 CPU cores) -> benchmarks/results/
	$(BIN)/fmnist benchmark --config $(CONFIG) --variants $(BENCH_VARIANTS) --batch-size 128,1024 --steps 100 --warmup 10 --repeats 5 \
		--time-to-accuracy 0.91 --time-to-accuracy-config fast91 --time-to-accuracy-seeds 0-4

gpu-bundle: $(STAMP)  ## what the prepared GPU run needs there (Keras wheels, the data) -> gpu-bundle/ (docs/speed.md)
	$(BIN)/python -m benchmarks.gpu_bundle

train-keras: $(STAMP)  ## train the Keras backend once on CONFIG
	$(BIN)/fmnist train --engine keras --config $(CONFIG)

train-lightning: $(STAMP)  ## train the Lightning engine once on CONFIG
	$(BIN)/fmnist train --engine lightning --config $(CONFIG)

tensorboard: $(STAMP)  ## watch every run in runs/ (Keras and Lightning overlaid); this machine only, unless TB_HOST=0.0.0.0
	$(BIN)/tensorboard --logdir runs --host $(TB_HOST)

# `fmnist serve` needs models: MODELS="runs/<keras run> runs/<lightning run>" (run directories or .onnx files).
serve: $(STAMP)  ## the web page and JSON API on http://127.0.0.1:8000/ for MODELS (docs/serve.md)
	@test -n "$(MODELS)" || { echo 'name the models: make serve MODELS="RUN_DIR_OR_ONNX RUN_DIR_OR_ONNX"'; exit 2; }
	$(BIN)/fmnist serve $(MODELS)

serve-bench: $(STAMP)  ## load test of fmnist serve on MODELS (requests/s, p50/p99, memory) -> benchmarks/results/<date>-cpu-serve/
	@test -n "$(MODELS)" || { echo 'name the models: make serve-bench MODELS="RUN_DIR_OR_ONNX RUN_DIR_OR_ONNX"'; exit 2; }
	$(BIN)/python -m serving.loadtest $(MODELS)

screenshot: $(STAMP)  ## regenerate docs/images/serve.png (the README's picture of the page) with MODELS
	@test -n "$(MODELS)" || { echo 'name the models: make screenshot MODELS="RUN_DIR_OR_ONNX RUN_DIR_OR_ONNX"'; exit 2; }
	$(BIN)/python -m serving.screenshot $(MODELS) --out docs/images/serve.png

clean:  ## remove the venv and caches (runs/ is kept)
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
