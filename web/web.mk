# The browser version (web/). Included by the main Makefile, or run alone from the repository root:
#   make -f web/web.mk web          serve the page with the shipped model on http://127.0.0.1:8000/
#   make -f web/web.mk test-web     Chromium + npm packages if missing, then the browser test
SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PY ?= .venv/bin/python
WEB_PORT ?= 8000
WEB_HOST ?= 127.0.0.1

.PHONY: web web-deps test-web bench-web

# npm writes node_modules/.package-lock.json on every install: reinstall when the lockfile is newer.
web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

web-deps: web/node_modules/.package-lock.json  ## Debian's chromium (if /usr/bin/chromium is missing) and the page's pinned npm packages
	@[ -x /usr/bin/chromium ] || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

web: web/node_modules/.package-lock.json  ## serve the page with the shipped model (http://127.0.0.1:8000/, ?variant=fp32 after `make fp32`)
	python3 web/serve.py --host $(WEB_HOST) --port $(WEB_PORT)

test-web: web-deps  ## the browser test: the page in headless Chromium against the Python runtime, token for token
	@[ -x $(PY) ] || { echo "$(PY) is missing: run 'make setup' first"; exit 1; }
	$(PY) -m pytest -q tests/test_web.py

bench-web: web-deps  ## tokens/s and load time of the page (int8, fp32; 1 and 2 threads) next to the Python runtime -> benchmarks/results/web/
	$(PY) web/test/bench.py
