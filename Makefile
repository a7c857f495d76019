# Both entry points create the virtual environment themselves.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-nat test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m p2pbackup.cli.demo

# The same mesh behind home routers, on a testbed of network namespaces (root).
demo-nat: $(STAMP)
	$(PY) -m netbed.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: lint
	$(VENV)/bin/pytest -n 2 --dist loadgroup

# p2pbackup against restic and borg (when installed) on the same data, in one run.
# BENCH_ARGS="--workdir DIR" puts every tool on DIR's filesystem; "--quick" tries it.
bench: $(STAMP)
	$(PY) -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
