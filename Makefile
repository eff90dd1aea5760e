# zeroserve: `make up` runs the main job, `make test` runs the suite.
# Both create .venv on first use (and refresh it when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up test lint typecheck pytest bench-queueproxy bench-activator clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

up: $(STAMP)
	$(VENV)/bin/zeroserve up examples/helloworld.yaml

test: lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest

# Queue-proxy vs direct vs nginx on loopback (~2 min; BENCH_ARGS=--quick for ~30 s).
bench-queueproxy: $(STAMP)
	$(PY) -m benchmarks.queueproxy $(BENCH_ARGS)

# Activator warm path (vs queue-proxy and direct) and 10,000 held requests (~2 min; --quick ~30 s).
bench-activator: $(STAMP)
	$(PY) -m benchmarks.activator $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
