# The two set-up commands of the README: `make demo` (the tour) and `make test`.
# Both create or reuse .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test bench docs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,distributed]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m fungrad.tour

# One run of everything, on two worker processes (pytest-xdist): a second run for the
# `slow` tests would start and collect again, and its one long test (a subprocess
# compiling 200 kernels) would leave the other worker idle; here it overlaps the rest.
# `pytest -m "not slow"` is the quick answer; tests/README.md says what compiles where.
test: $(STAMP)
	$(PY) -m pytest -n 2

# the comparison systems (jax, torch, autograd) go into their own venv, not .venv
bench:
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install -q -e '.[bench]'
	.venv-bench/bin/python bench/run.py

docs: $(STAMP)
	$(PY) -m pip install -q -e '.[docs]'
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
