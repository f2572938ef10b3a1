# Tender: the two commands a newcomer needs are `make demo` and `make test`.
# Everything else is installed on demand into .venv (Python) and node_modules (Foundry, solc-js,
# Solidity libraries); a second run skips the installs while pyproject.toml/package-lock.json
# are unchanged.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NODE_BIN := $(CURDIR)/node_modules/.bin
SOLC_VERSION := 0.8.28
CACHE := $(CURDIR)/.cache
# py-solc-x / ape-solidity find our solc-js shim here as solc-v<version>: no compiler downloads.
export SOLCX_BINARY_PATH := $(CACHE)/solcx
export PATH := $(NODE_BIN):$(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

VENV_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
SOLC_SHIM := $(SOLCX_BINARY_PATH)/solc-v$(SOLC_VERSION)
# ...and in py-solc-x's default folder, so that `ape compile` / `ape test` run by hand (outside
# make, without SOLCX_BINARY_PATH) find the same shim instead of trying to download solc. An
# existing solc-v$(SOLC_VERSION) there (a real install) is left alone.
SOLCX_HOME_SHIM := $(HOME)/.solcx/solc-v$(SOLC_VERSION)
PYTEST_ARGS ?=

.PHONY: help setup contracts test test-contracts test-python test-ape lint fmt demo bench models snapshot clean

help:
	@echo "make demo    install what is missing, start a local market, run requests end to end"
	@echo "make test    install what is missing, run every test (forge, pytest, ape)"
	@echo "make lint    ruff, mypy, forge fmt --check, slither, the gas snapshot"
	@echo "make bench   benchmarks (JSON under benchmarks/results/)"
	@echo "make models  retrain the sample ONNX models, token models included (installs the optional torch extra)"

# ---------------------------------------------------------------- setup (idempotent)

setup: $(VENV_STAMP) $(NODE_STAMP) $(SOLC_SHIM) $(SOLCX_HOME_SHIM)

$(VENV_STAMP): pyproject.toml constraints.txt
	@echo "==> Python environment ($(VENV))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(PY) -m pip check
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@echo "==> Node packages (Foundry, solc-js, OpenZeppelin, Solady)"
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(SOLC_SHIM): scripts/solc $(NODE_STAMP)
	@mkdir -p $(SOLCX_BINARY_PATH)
	@ln -sf $(CURDIR)/scripts/solc $@
	@$@ --version | grep -q "$(SOLC_VERSION)" || (echo "solc shim does not report $(SOLC_VERSION)"; exit 1)

$(SOLCX_HOME_SHIM): $(SOLC_SHIM)
	@mkdir -p $(dir $@)
	@test -e $@ || ln -s $(CURDIR)/scripts/solc $@

contracts: setup
	cd contracts && forge build
	$(PY) -c "from tender.chain import export_abis; export_abis()"

# ---------------------------------------------------------------- tests

test: setup contracts
	$(MAKE) --no-print-directory test-contracts test-python test-ape

test-contracts:
	cd contracts && forge test

test-python:
	$(PY) -m pytest $(PYTEST_ARGS)

test-ape:
	@if [ -d tests/ape ]; then ape test tests/ape; else echo "no ape suite yet"; fi

# ---------------------------------------------------------------- quality

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd contracts && forge fmt --check
	$(PY) scripts/slither.py
	$(PY) scripts/gas_snapshot.py

fmt: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	cd contracts && forge fmt

# rewrites contracts/.gas-snapshot (unit tests; `make lint` fails when it is more than 2% off)
snapshot: contracts
	$(PY) scripts/gas_snapshot.py --write

# ---------------------------------------------------------------- demo, benchmarks, models

demo: setup contracts
	$(VENV)/bin/tender devnet $(DEMO_ARGS)

bench: setup contracts
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

models: setup
	$(PY) -m pip install --quiet -e '.[train]'
	$(PY) scripts/train_models.py
	$(PY) scripts/train_token_model.py

clean:
	rm -rf contracts/out contracts/cache .pytest_cache .mypy_cache .ruff_cache .build
