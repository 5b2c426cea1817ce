# Recipes for traductor. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
DATA ?= data/bible
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup setup-runtime sword data test test-fast demo train-demo clean

help:  ## list the recipes
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(VENV)/.dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.dev  ## virtual environment with everything (train, export, runtime, tests)

sword:  ## Debian packages with the two Bibles (SWORD modules), if missing
	@if [ ! -f /usr/share/sword/mods.d/engWEB2015eb.conf ] || [ ! -f /usr/share/sword/mods.d/spaRV1909eb.conf ]; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq sword-text-web sword-text-sparv; fi

$(DATA)/train.tsv:
	$(MAKE) sword setup
	$(BIN)/traductor prepare-data bible --out $(DATA)

data: $(DATA)/train.tsv  ## extract the Spanish-English Bible corpus into data/bible

test: setup sword  ## set up and run the whole test suite
	$(BIN)/python -m pytest -q tests

test-fast: setup  ## tests without the slow ones
	$(BIN)/python -m pytest -q -m "not slow" tests

train-demo: data  ## a 20-minute CPU training run on the Bible (issue-2 demo)
	$(BIN)/traductor train --data $(DATA) --out runs/demo --force --pre-norm --minutes 20 --steps 100000 \
	  --eval-every 200 --max-tokens 3000 --warmup 500 --lr 1e-3

clean:  ## remove the virtual environments and build leftovers
	rm -rf $(VENV) build *.egg-info
