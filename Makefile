# Development tasks for pymai.  Every recipe runs under bash with
# -euo pipefail, so any failing command fails the target.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DELETE_ON_ERROR:
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules

PYTHON ?= python3
PYTEST_ARGS ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp

.PHONY: venv test demo bench docs lint typecheck clean chaos llm-server llama-server

# Create the virtualenv if missing; reinstall only when pyproject.toml
# is newer than the stamp, so repeated runs are fast.
venv: $(STAMP)

$(STAMP): pyproject.toml plugins/mai-postgres/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[test,docs,mcp]"
	$(BIN)/python -m pip install -e plugins/mai-postgres
	touch $(STAMP)

# The real OpenAI-compatible model server that tests/llm starts (llama-cpp-python's). PyPI has
# no Linux wheel of it: pip builds the vendored llama.cpp from the sdist (CMake + Ninja), about
# 5-6 minutes on 2 cores the first time; pip's wheel cache makes later installs take seconds.
# LLAVA off trims the build; GGML_NATIVE off makes the cached wheel portable across CPUs.
# `make llm-server` also builds llama.cpp's C++ llama-server from the same sdist (see
# tools/build-llama-server; about 6.5 more minutes the first time on a machine).
LLAMA_CPP_VERSION := 0.3.36

llm-server: venv $(BIN)/llama-server
	CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" \
		$(BIN)/python -m pip install "llama-cpp-python[server]==$(LLAMA_CPP_VERSION)"

llama-server: $(BIN)/llama-server

$(BIN)/llama-server: | $(STAMP)
	tools/build-llama-server $(LLAMA_CPP_VERSION) $@ $(BIN)/python

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: venv
	$(BIN)/python examples/demo.py

bench: venv
	shopt -s nullglob; \
	scripts=(benchmarks/*.py); \
	if (( $${#scripts[@]} == 0 )); then echo "no benchmarks/*.py scripts found"; fi; \
	for script in "$${scripts[@]}"; do \
		echo "==> $$script"; \
		$(BIN)/python "$$script"; \
	done

# The long fault-injection runs: PostgreSQL SIGKILL chaos for 60 s, ... (needs the server
# binaries: apt-get install postgresql) and the long random-program run on SQLite.
chaos: venv
	$(BIN)/python -m pytest tests/postgres tests/durable/randprog -m chaos -v $(PYTEST_ARGS)

docs: venv
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

# Remove build and tool artefacts; keeps .venv (delete it by hand to rebuild).
clean:
	rm -rf docs/_build build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage
	find . -path ./$(VENV) -prune -o -name '*.egg-info' -type d -print0 | xargs -0 rm -rf
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf
