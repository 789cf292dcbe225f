# Quick start: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-thorough lint typecheck bytecode pytest bench bench-peers bench-instructions notebooks clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "wsresearch needs Python 3.11 or newer (PYTHON=$(PYTHON))")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[notebook,report,dataset,dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/wsresearch demo

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Two workers per core (pytest-xdist): the suite mostly waits on real sockets, subprocesses
# and kernels, so one worker per core leaves the cores idle a third of the time. Work
# stealing: a worker that runs out takes tests from another's share, so no worker is left
# with a queue of long tests at the end.
JOBS = $(shell $(PYTHON) -c 'import os; print(2 * (os.cpu_count() or 1))')

# The suite runs with PYTHONDONTWRITEBYTECODE unset (empty), as Python runs by default, so
# that bytecode is written once and read after. Without it, every process the suite starts
# (about 240: the command line's tests, kernels, a parallel export's workers) compiles the
# package from source again, about 0.2 s of CPU each; and pytest cannot keep the test
# modules it rewrites for their asserts, so each worker rewrites all of them again at every
# run, about 10 s of CPU each.
WRITE_BYTECODE := PYTHONDONTWRITEBYTECODE=

pytest: $(STAMP)
	$(WRITE_BYTECODE) $(VENV)/bin/pytest -n $(JOBS) --dist worksteal

# The same suite with its fuzz and soak tests at full size (WSR_THOROUGH=1): more generated
# inputs, more kills, more reconnect cycles, and a test may take 10 minutes, not 1. About
# 1.5 times as long as `make test` on two cores.
test-thorough: $(STAMP) lint typecheck
	$(WRITE_BYTECODE) WSR_THOROUGH=1 $(VENV)/bin/pytest -n $(JOBS) --dist worksteal --timeout 600

# Re-run the example notebooks top to bottom and save their outputs.
notebooks: $(STAMP)
	cd notebooks && ../$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace *.ipynb

# The peers wsresearch is measured against (cryptofeed 2.4.1, orjson), in a venv of their own.
PEERS := benchmarks/.peers-venv
PEERS_STAMP := $(PEERS)/.installed

$(PEERS_STAMP): benchmarks/peers/requirements.txt
	@test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS)/bin/python -m pip install --quiet -r benchmarks/peers/requirements.txt
	@touch $(PEERS_STAMP)

# The package's bytecode compiled first, as an installed package has it: the parallel
# export's worker processes each import wsresearch, and compiling it from source costs each
# of them about 0.15 s.
bytecode: $(STAMP)
	@$(PY) -m compileall -q wsresearch

bench: bytecode $(PEERS_STAMP)
	$(PY) benchmarks/suite.py --rounds 5

bench-peers: $(STAMP) $(PEERS_STAMP)
	$(PY) benchmarks/bench_peers.py

bench-instructions: $(STAMP)
	$(PY) benchmarks/instructions.py

clean:
	rm -rf $(VENV) $(PEERS) .pytest_cache .mypy_cache .ruff_cache
