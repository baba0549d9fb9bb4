# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# TORCH_SPEC pins the CPU wheel this project is developed with; elsewhere, keep your own torch:
#   make test TORCH_SPEC=        (installs nothing for torch if one satisfying pyproject is present)
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/pip install --quiet "$(TORCH_SPEC)"; fi
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/tsn run --scenario pmnist --tasks 10 --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	$(BIN)/python benchmarks/pmnist.py --data-dir ../shared/data/mnist

clean:
	rm -rf $(VENV) runs .pytest_cache
