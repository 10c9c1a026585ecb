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

.PHONY: venv test lint reproduce bench clean-cache lock

venv: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check paperlib tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check paperlib tests benchmarks

reproduce: $(STAMP)
	$(BIN)/paperlib reproduce --profile $(PROFILE) $(if $(WORKERS),--workers $(WORKERS))

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# Regenerate the lock file after changing dependencies in pyproject.toml (pip-tools in a throwaway venv;
# torch is resolved as the CPU build of requirements/torch-cpu.in and left out of the lock).
lock:
	test -x .lockenv/bin/pip-compile || ($(PY) -m venv .lockenv && .lockenv/bin/pip install -q pip-tools)
	.lockenv/bin/pip-compile --quiet --extra dev --strip-extras --unsafe-package torch --no-emit-index-url \
		--no-emit-find-links -o $(LOCK) pyproject.toml requirements/torch-cpu.in

clean-cache:
	rm -rf runs
