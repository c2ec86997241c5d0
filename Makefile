# simrouter: `make demo` and `make test` work on a fresh machine with python3.11, pip and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench bench-live clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/simrouter demo

test: install
	$(PY) -m pytest -q

# The live generator's ceiling against Locust (needs nginx for the trivial target; falls back to a Python server).
bench-live: install
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/bench_loadgen.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
