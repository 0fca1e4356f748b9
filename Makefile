# Quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared

.PHONY: venv data test lint demo figures bench-perf clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

# Link the offline datasets and forget lists into data/ when ../shared has them.
data:
	@bash scripts/link_shared_data.sh $(SHARED) data

lint: venv
	$(PY) -m ruff check .

test: venv data lint
	$(PY) -m pytest -q

demo: venv data
	$(PY) -m unlearnlab demo

figures: venv data
	$(PY) scripts/make_figures.py

bench-perf: venv data
	$(PY) benchmarks/bench_perf.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
