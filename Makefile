# Every target creates or reuses .venv; a fresh machine needs only `make test` or `make reproduce`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# CPU build of torch by default; GPU users: `make TORCH_SPEC="torch==2.13.0 --index-url ..."` or preinstall.
TORCH_SPEC ?= torch==2.13.0
# Exact versions of every other package (pip-compile from pyproject.toml; `make lock` regenerates it).
LOCK    := requirements/lock.txt
PROFILE ?= mini
# parallel notebook workers: empty = one per core, each computing with one thread (GPU nodes: paperlib
# reproduce --gpus 0,1,...)
WORKERS ?=
# RERUN=1: execute every notebook, also those whose executed copy is up to date (paperlib reproduce --rerun)
RERUN ?=

.PHONY: venv test test-mini lint reproduce docs browser bench calibrate calibrate-muse clean-cache lock

venv: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# CI's suite: everything but the tests that train the mini profile's models (pretrained base, original, retain:
# minutes on 2 cores: with them CI took 15 min 48 s); `make test-mini` runs those (`make reproduce` builds
# the same models and notebook 00 checks them).
test: $(STAMP) browser
	$(BIN)/ruff check paperlib tests benchmarks
	$(BIN)/python -m pytest -q -m "not mini"

test-mini: $(STAMP)
	$(BIN)/python -m pytest -q -m mini

lint: $(STAMP)
	$(BIN)/ruff check paperlib tests benchmarks

reproduce: $(STAMP)
	$(BIN)/paperlib reproduce --profile $(PROFILE) $(if $(WORKERS),--workers $(WORKERS)) $(if $(RERUN),--rerun)

# The notebooks as `make reproduce` last executed them (executed/$(PROFILE)/), rendered as a website:
# build/site/index.html (paperlib.report.docsite, mkdocs.yml). Runs no notebook, needs no network.
docs: $(STAMP)
	$(BIN)/python -m paperlib.report.docsite --executed executed/$(PROFILE) --out build/site

# Headless Chromium for the website's browser check (tests/test_notebooks.py): Debian's chromium and
# chromium-driver, installed when missing where apt-get runs as root; elsewhere the check skips and says why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "make browser: installing Debian's chromium and chromium-driver"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "make browser: no chromium / chromedriver, and apt-get cannot install them here: the browser check skips"; fi

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# Measure one design of the miniature (paperlib.studies.calibration.DESIGNS) into benchmarks/calibration.json and
# rewrite tables/00_calibration: make calibrate DESIGN=d2-replay-some-facts
calibrate: $(STAMP)
	$(BIN)/python benchmarks/calibrate.py $(DESIGN) --render

# The same for mini-MUSE (paperlib.studies.muse_calibration.DESIGNS; benchmarks/muse_calibration.json,
# tables/11_muse_calibration): make calibrate-muse DESIGN=m1-base-prior
calibrate-muse: $(STAMP)
	$(BIN)/python benchmarks/calibrate.py --muse $(DESIGN) --render

# Regenerate the lock file after changing dependencies in pyproject.toml (pip-tools in a throwaway venv;
# torch is resolved as the CPU build of requirements/torch-cpu.in and left out of the lock).
lock:
	test -x .lockenv/bin/pip-compile || ($(PY) -m venv .lockenv && .lockenv/bin/pip install -q pip-tools)
	.lockenv/bin/pip-compile --quiet --extra dev --strip-extras --unsafe-package torch --no-emit-index-url \
		--no-emit-find-links -o $(LOCK) pyproject.toml requirements/torch-cpu.in

# the run cache and the executed copies' stamps (paperlib.engine.stamps): the next `make reproduce` executes every notebook
clean-cache:
	rm -rf runs
	find executed -name '*.stamp.json' -delete 2>/dev/null || true
