# Quick start: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench bench-instructions notebooks clean

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

# On every core (pytest-xdist): the suite mostly waits on real sockets and subprocesses,
# so two workers on two cores take about half the time of one.
pytest: $(STAMP)
	$(VENV)/bin/pytest -n auto

# Re-run the example notebooks top to bottom and save their outputs.
notebooks: $(STAMP)
	cd notebooks && ../$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace *.ipynb

bench: $(STAMP)
	$(PY) benchmarks/suite.py

bench-instructions: $(STAMP)
	$(PY) benchmarks/instructions.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
