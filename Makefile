# One entry point for people and CI: `make serve` and `make test` set up what they need.
# durable_rules needs CPython 3.12 or older; the first such interpreter found is used.
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null; \
	then command -v $$p; break; fi; done)
VENV ?= .venv
BIN := $(VENV)/bin
ADDRESS ?= localhost:50051

.PHONY: setup serve test lint typecheck proto check-proto clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	@test -n "$(PYTHON)" || { echo "need CPython 3.11 or 3.12 for durable_rules"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./clients/python -e '.[dev]'
	touch $@

serve: setup
	$(BIN)/leadgate serve --address $(ADDRESS) --rules rules

test: setup check-proto lint typecheck
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

proto: setup
	$(BIN)/python tools/gen_proto.py

check-proto: setup
	$(BIN)/python tools/gen_proto.py --check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
