# Recipes for traductor. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
DATA ?= data/bible
RT_VENV := .venv-runtime
WHEEL_VENV := .venv-wheel
OV_VENV := .venv-openvino
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

EXAMPLES := "En el principio crió Dios los cielos y la tierra." \
  "Bienaventurados los pobres en espíritu, porque de ellos es el reino de los cielos." \
  "Y dijo Dios: Sea la luz: y fué la luz."

.PHONY: help translate model reexport fp32 wheel bench compare setup sword qemu data lint format office-deps test test-fast test-runtime-only test-wheel test-cpus test-openvino test-arm64 test-arm64-fast arm64-tools arm64-env arm64-python train-demo clean

translate: $(RT_VENV)/.ok  ## set up the runtime only (no torch) and translate example sentences with the shipped model
	@$(RT_VENV)/bin/traductor translate $(EXAMPLES)

help:  ## list the recipes
	@grep -hE '^[a-z0-9-]+:.*## ' Makefile web/web.mk | sed 's/:.*## /\t/'

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

test: setup sword fp32 web-deps office-deps  ## set up and run the whole test suite, the runtime tests without torch, the wheel, and the int8 tests on emulated CPUs (x86 and aarch64)
	$(BIN)/python -m pytest -q tests
	$(MAKE) test-runtime-only
	$(MAKE) test-wheel
	$(MAKE) test-cpus
	$(MAKE) test-arm64-fast

office-deps:  ## Debian's LibreOffice (writer, impress) and poppler-utils: the tests open translated office files in a real consumer
	@command -v soffice >/dev/null && command -v pdftotext >/dev/null || { $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq --no-install-recommends libreoffice-writer-nogui libreoffice-impress-nogui poppler-utils; }

qemu:  ## Debian's qemu-user, to run the tests as on other x86-64 CPUs, if missing
	@command -v qemu-x86_64 >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq qemu-user; }

# int8 kernels differ by CPU: AVX2 without VNNI (where u8 x s8 sums can saturate) and no AVX at all.
# QEMU emulates both on any x86-64 machine (it cannot emulate AVX-512: that path runs natively on CI
# machines that have it).
# (Haswell minus system features QEMU's TCG lacks and only warns about.)
HASWELL := Haswell,-hle,-rtm,-invpcid,-pcid,-x2apic,-tsc-deadline
test-cpus: setup qemu  ## the runtime and int8 tests under qemu as an AVX2-only CPU, the int8 ones as a no-AVX CPU
	qemu-x86_64 -cpu $(HASWELL) $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_quantize.py tests/runtime -m "not slow"
	qemu-x86_64 -cpu Nehalem $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_quantize.py tests/runtime/test_batch_invariance.py -m "not slow"

$(RT_VENV)/.ok: pyproject.toml
	$(PYTHON) -m venv $(RT_VENV)
	$(RT_VENV)/bin/pip install -q --upgrade pip
	$(RT_VENV)/bin/pip install -q .
	touch $@

test-runtime-only: $(RT_VENV)/.ok  ## runtime tests in a venv with only the base dependencies (no torch)
	$(RT_VENV)/bin/pip install -q --no-deps --force-reinstall . && $(RT_VENV)/bin/pip install -q pytest
	cd tests && ../$(RT_VENV)/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)" \
	  || { echo "torch is installed in $(RT_VENV); the runtime must work without it"; exit 1; }
	cd /tmp && $(CURDIR)/$(RT_VENV)/bin/python -m pytest -q -p no:cacheprovider --rootdir=$(CURDIR) $(CURDIR)/tests/runtime

wheel: setup  ## build the wheel (runtime + the default model's int8 variant) into dist/
	rm -rf build dist/traductor-*.whl
	$(BIN)/pip wheel -q --no-deps -w dist .
	@ls -l dist/traductor-*.whl

test-wheel: wheel  ## install the wheel into a clean venv (no torch) and translate from a temporary directory
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/pip install -q --upgrade pip
	$(WHEEL_VENV)/bin/pip install -q dist/traductor-*.whl
	$(PY) tests/wheel_check.py dist/traductor-*.whl --venv $(WHEEL_VENV)

$(OV_VENV)/.ok: pyproject.toml
	$(PYTHON) -m venv $(OV_VENV)
	$(OV_VENV)/bin/pip install -q --upgrade pip
	# onnxruntime-openvino replaces the onnxruntime wheel: install the package without its deps.
	$(OV_VENV)/bin/pip install -q onnxruntime-openvino numpy tokenizers pytest
	touch $@

test-openvino: $(OV_VENV)/.ok  ## runtime tests with the OpenVINO execution provider, in its own venv
	$(OV_VENV)/bin/pip install -q --no-deps --force-reinstall .
	cd /tmp && TRADUCTOR_TEST_PROVIDER=openvino $(CURDIR)/$(OV_VENV)/bin/python -m pytest -q -p no:cacheprovider --rootdir=$(CURDIR) $(CURDIR)/tests/runtime

# -- linux aarch64, emulated on x86 (docs/edge.md) --------------------------------------------------
# An arm64 Debian userland (the interpreter and its libraries, from Debian's own packages) plus the
# aarch64 wheels pip picks for `pip install traductor`, run under qemu-aarch64 as a Neoverse-N1.
# Debian 12's Python is 3.11, the oldest traductor supports. pip does not widen manylinux tags:
# each one is named (tokenizers' aarch64 wheel is manylinux_2_17/2014 only).
ARM64 := .venv-arm64
ARM64_SUITE := bookworm
ARM64_WHEELS := --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 \
  --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp --only-binary=:all:
# -L serves the tree's files first, /proc/cpuinfo included: onnxruntime segfaults on import when it
# reads the host's x86 one (tests/arm64/cpuinfo is a Neoverse-N1's).
ARM64_PY := PYTHONPATH=$(CURDIR)/$(ARM64)/site nice -n 10 qemu-aarch64 -L $(CURDIR)/$(ARM64)/root \
  -cpu neoverse-n1 $(CURDIR)/$(ARM64)/root/usr/bin/python3.11

arm64-tools:  ## Debian's qemu-user and mmdebstrap, to build and run an arm64 environment, if missing
	@command -v qemu-aarch64 >/dev/null && command -v mmdebstrap >/dev/null || { $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq qemu-user mmdebstrap; }

$(ARM64)/root/.ok: tests/arm64/cpuinfo | arm64-tools
	rm -rf $(ARM64)/root && mkdir -p $(ARM64)
	nice -n 10 mmdebstrap -q --variant=extract --architectures=arm64 --include=python3.11,libstdc++6 \
	  $(ARM64_SUITE) $(ARM64)/root $(wildcard /etc/apt/sources.list.d/debian.sources)
	mkdir -p $(ARM64)/root/proc && cp tests/arm64/cpuinfo $(ARM64)/root/proc/cpuinfo
	touch $@

# traductor's wheel (built here, pure Python) and every dependency as an aarch64 wheel: what
# `pip install traductor` resolves to on a Raspberry Pi or a Graviton server.
arm64-env: $(ARM64)/root/.ok | $(VENV)/.dev  ## the arm64 environment in .venv-arm64 (Debian userland + aarch64 wheels)
	rm -rf $(ARM64)/site $(ARM64)/dist
	$(BIN)/pip wheel -q --no-deps -w $(ARM64)/dist .
	nice -n 10 $(BIN)/pip install -q --target $(ARM64)/site $(ARM64_WHEELS) $(ARM64)/dist/traductor-*.whl pytest

# What CI runs (make test, ~4 minutes here): the ORT-format tests and batch invariance on aarch64.
ARM64_FAST := tests/runtime/test_ort_format.py tests/runtime/test_batch_invariance.py
test-arm64-fast: arm64-env  ## a fast subset of the runtime tests under qemu-aarch64 (part of `make test`)
	cd /tmp && $(ARM64_PY) -m pytest -q -p no:cacheprovider --rootdir=$(CURDIR) -m "not slow" \
	  $(addprefix $(CURDIR)/,$(ARM64_FAST))

# The rest (emulation is slow: see docs/edge.md for the times): every runtime test, the shipped
# model's batch invariance included, and the test books int8 greedy on both sides (BLEU within 0.1).
test-arm64: arm64-env fp32 data  ## every runtime test and the test books under qemu-aarch64, compared with x86
	cd /tmp && $(ARM64_PY) -m pytest -q -p no:cacheprovider --rootdir=$(CURDIR) $(CURDIR)/tests/runtime
	$(PY) benchmarks/arm64_parity.py --arm64 "$(ARM64_PY)" --model models/es-en --data $(DATA)/test.tsv \
	  --variants int8 --beams 1 --out $(ARM64)/parity

arm64-python:  ## print the command that runs the arm64 Python (for benchmarks/arm64_parity.py --arm64)
	@echo '$(ARM64_PY)'

lint: setup  ## ruff: lint and format check (configured in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup  ## ruff: apply the formatter and the safe lint fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-fast: setup  ## tests without the slow ones
	$(BIN)/python -m pytest -q -m "not slow" tests

train-demo: data  ## a 20-minute CPU training run on the Bible (issue-2 demo)
	$(BIN)/traductor train --data $(DATA) --out runs/demo --force --pre-norm --minutes 20 --steps 100000 \
	  --eval-every 200 --max-tokens 3000 --warmup 500 --lr 1e-3

BENCH_OUT ?= benchmarks/results
bench: $(RT_VENV)/.ok $(OV_VENV)/.ok fp32  ## traductor bench on CPU (runtime venv) and OpenVINO (its venv), merged into one report
	$(RT_VENV)/bin/pip install -q --no-deps --force-reinstall . && $(RT_VENV)/bin/pip install -q matplotlib
	$(OV_VENV)/bin/pip install -q --no-deps --force-reinstall .
	$(RT_VENV)/bin/traductor bench --model models/es-en --providers cpu,cuda --out $(BENCH_OUT)/bench-cpu $(BENCH_ARGS)
	$(OV_VENV)/bin/traductor bench --model models/es-en --providers openvino --out $(BENCH_OUT)/bench-openvino $(BENCH_ARGS)
	$(RT_VENV)/bin/traductor bench --merge $(BENCH_OUT)/bench-cpu $(BENCH_OUT)/bench-openvino --out $(BENCH_OUT)/bench

compare: setup data fp32  ## PyTorch vs traductor vs CTranslate2 on the same weights, interleaved in one run
	$(BIN)/python benchmarks/compare_engines.py --model models/es-en --data $(DATA)/test.tsv --out $(BENCH_OUT) --repeats 3

MODEL_RUN ?= runs/es-en
WEIGHTS := models/es-en.weights.npz
model: data  ## train the shipped es-en model (GPU if present; on 2 CPU cores expect hours) and export it to models/es-en
	$(BIN)/traductor train --data $(DATA) --out $(MODEL_RUN) --force --pre-norm --d-model 256 --heads 4 --d-ff 1024 \
	  --encoder-layers 6 --decoder-layers 4 --vocab-size 8000 --dropout 0.3 --max-tokens 12000 --warmup 1000 --lr 1e-3 \
	  --minutes $${MINUTES:-7.8} --steps 1000000 --eval-every 400 --eval-sentences 238 --no-optimizer-state
	$(BIN)/traductor export $(MODEL_RUN)/best.pt --out models/es-en --force --int8 --dev $(DATA)/dev.tsv \
	  --test-data $(DATA)/test.tsv --card-notes models/es-en.notes.md --save-weights $(WEIGHTS)

reexport: setup data  ## re-export models/es-en from its tracked float16 weights (after an exporter change; no training run needed)
	$(BIN)/traductor export $(WEIGHTS) --out models/es-en --force --int8 --dev $(DATA)/dev.tsv \
	  --test-data $(DATA)/test.tsv --card-notes models/es-en.notes.md

# The fp32 variant is not tracked: it is rebuilt from the float16 weights, parity-checked against
# PyTorch and against the manifest (the int8 variant and the weights are what the repository holds).
FP32_FILES := models/es-en/encoder.onnx models/es-en/decoder.onnx models/es-en/align.onnx
fp32: $(FP32_FILES)  ## rebuild the shipped model's fp32 variant from models/es-en.weights.npz
$(FP32_FILES) &: $(WEIGHTS) | $(VENV)/.dev
	$(BIN)/traductor export $(WEIGHTS) --out models/es-en --rebuild-fp32

clean:  ## remove the virtual environments and build leftovers
	rm -rf $(VENV) $(RT_VENV) $(OV_VENV) $(WHEEL_VENV) build dist *.egg-info

# The browser version: web, web-deps, test-web, bench-web.
include web/web.mk
