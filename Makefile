# simrouter: `make demo` and `make test` work on a fresh machine with python3.11, pip and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test notebook bench bench-startup bench-live bench-precision bench-gateway clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/simrouter demo

# JupyterLab on the notebooks, listening on 127.0.0.1 only (open the URL it prints; Ctrl-C stops it).
NOTEBOOK_PORT ?= 8888
notebook: install
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --port=$(NOTEBOOK_PORT) --no-browser --notebook-dir=notebooks

# The 30 s service load test runs first, alone on the machine; then the whole suite.
test: install
	SIMROUTER_SLOW_TESTS=1 $(PY) -m pytest -q -m slow
	$(PY) -m pytest -q -rs

# Simulation speed and memory against a bare SimPy M/M/c queue (a few minutes; BENCH_ARGS=--quick for seconds).
bench: install
	$(PY) benchmarks/bench_sim.py $(BENCH_ARGS)
	$(PY) benchmarks/bench_startup.py

# Start-up: whole-process wall time of `simrouter run baseline` and `import simrouter` against `python -c pass` (~15 s).
bench-startup: install
	$(PY) benchmarks/bench_startup.py

# The live generator's ceiling against Locust (needs nginx for the trivial target; falls back to a Python server).
bench-live: install
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/bench_loadgen.py

# The live generator's latency figures against hey / wrk on nginx answering in 1 ms (issue 12).
bench-precision: install
	$(PY) benchmarks/bench_precision.py

# Routing cost: the full router's fast path with 4 deployments against the single backend, per request (issue 14).
bench-gateway: install
	$(PY) benchmarks/bench_gateway.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
