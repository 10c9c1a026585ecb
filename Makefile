# Every target creates or reuses .venv; a fresh machine needs only `make test` or `make reproduce`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# CPU build of torch by default; GPU users: `make TORCH_SPEC="torch==2.13.0 --index-url ..."` or preinstall.
TORCH_SPEC ?= torch==2.13.0
PROFILE ?= mini

.PHONY: venv test lint reproduce bench clean-cache

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check paperlib tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check paperlib tests benchmarks

reproduce: $(STAMP)
	$(BIN)/paperlib reproduce --profile $(PROFILE)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean-cache:
	rm -rf runs
