# Quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared

.PHONY: venv data test lint demo figures bench bench-figures bench-perf clean

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

# The leaderboard: every method on the standard scenarios, 5 seeds (about 30 min on 2 cores).
bench: venv data
	$(PY) -m unlearnlab bench --seeds 5 --out results/bench

bench-figures: venv
	$(PY) scripts/make_bench_figures.py results/bench --out assets

bench-perf: venv data
	$(PY) benchmarks/bench_perf.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
