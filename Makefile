# Two commands do everything on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast test-integration bench lint clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/flatguard up $(ARGS)

# Integration tests spend most of their time waiting on processes and timers (the suite used
# 58 % of one core run serially), so they run side by side; TEST_WORKERS=0 runs them serially.
# Four workers keep both cores busy through the waits (3:13 on 2 quiet cores).
# pyproject lists the integration tests first: the long ones start early and the short unit
# tests fill the gaps at the end, instead of a few long tests finishing alone.
TEST_WORKERS ?= 4

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# unit tests only: in-process, no child processes (target: under 30 s; about 29 s on 2 cores
# with two workers, 41 s serially: the rest of the waits are the behaviour under test)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/integration $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check trader supervisor notifier commander tests

clean:
	rm -rf $(VENV) *.egg-info
