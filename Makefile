# Two commands on a fresh machine with only Python:
#   make demo   -> builds the sample dataset and walks the user journey on it
#   make test   -> installs the test extras and runs the whole suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test lint bench docs clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e .
	touch $@

# torch comes first, pinned to the CPU build on this machine's disk, so the
# `torch` extra never pulls a multi-GB CUDA build.
$(VENV)/.test: $(VENV)/.base
	$(PIP) install "torch==2.13.0"
	$(PIP) install -e ".[test,dask,xarray,torch,docs,templates,zarr]"
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/laion-fmri demo --out demo-output

test: $(VENV)/.test
	$(PY) -m ruff check src tests benchmarks scripts examples
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(VENV)/.test
	$(PY) -m ruff check src tests benchmarks scripts examples
	$(PY) -m ruff format --check src tests || true

bench: $(VENV)/.test
	$(PY) benchmarks/run_all.py

# The examples run first so the figures they make appear in the docs.
docs: $(VENV)/.test
	$(PY) scripts/run_examples.py examples-output
	LAION_FMRI_EXAMPLES_OUT=$(CURDIR)/examples-output $(VENV)/bin/sphinx-build -W -b html docs docs/_build/html

clean:
	rm -rf $(VENV) demo-output docs/_build
