# Two set-up commands work on a fresh machine: `make compare` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= configs/baseline.yaml
SEEDS ?= 0 1 2
EPOCHS ?=
export FMNIST_DATA_DIR ?= $(abspath ../shared/data/fashion-mnist)

.PHONY: help venv test test-all compare train-keras train-lightning tensorboard clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the project with its test extras

test: $(STAMP)  ## run the default test suite (quick: slow tests are left out)
	$(BIN)/python -m pytest

test-all: $(STAMP)  ## run every test, the slow ones too
	$(BIN)/python -m pytest -m ''

compare: $(STAMP)  ## train both backends on CONFIG (full data, 15 epochs) and show both results
	$(BIN)/fmnist train --backend keras --config $(CONFIG) --run-dir runs/compare-keras --overwrite $(if $(EPOCHS),--epochs $(EPOCHS))
	$(BIN)/fmnist train --backend lightning --config $(CONFIG) --run-dir runs/compare-lightning --overwrite $(if $(EPOCHS),--epochs $(EPOCHS))

tensorboard: $(STAMP)  ## watch every run in runs/ (Keras and Lightning overlaid)
	$(BIN)/tensorboard --logdir runs --bind_all

clean:  ## remove the venv and caches (runs/ is kept)
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
