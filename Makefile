# Quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared

.PHONY: venv data postgres chromium test lint demo lab notebooks figures bench bench-figures bench-perf clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

# Link the offline datasets and forget lists into data/ when ../shared has them.
data:
	@bash scripts/link_shared_data.sh $(SHARED) data

# tests/test_tuning.py starts a throw-away PostgreSQL server: install Debian's package when its
# binaries are missing (needs root; without them that test skips, and fails under CI).
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql \
	  >/dev/null 2>&1; } || echo "warning: could not install postgresql; its test will not run"

# tests/test_report_browser.py opens the HTML reports in Debian's chromium (driven by Playwright,
# which downloads no browser of its own): install it when missing (needs root; without it those
# tests skip, and fail under CI).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	  >/dev/null 2>&1; } || echo "warning: could not install chromium; the browser tests will not run"

lint: venv
	$(PY) -m ruff check .

test: venv data lint postgres chromium
	$(PY) -m pytest -q

# Seed A's experiment with progress, figures in results/demo/ and where the forgotten sixes went
# (about 15 min cold on 2 busy cores, docs/demo.md; a minute once its models are cached).
demo: venv data
	$(PY) -m unlearnlab demo --out results/demo

# JupyterLab on the repository's notebooks.
# Jupyter refuses to start as root (containers, CI boxes) unless told it may.
lab: venv data
	$(PY) -m jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root)

# Execute every root notebook on the real data (not quick mode), reusing the cached models of the
# data root, and write each back in place with its outputs (NOTEBOOKS= to pick some).
NOTEBOOKS ?=
notebooks: venv data
	$(PY) -m unlearnlab.notebooks $(NOTEBOOKS)

figures: venv data
	$(PY) -m unlearnlab figures class-forgetting --out assets

# The leaderboard: every method on the six standard scenarios, 5 seeds, its tuned preset ranked
# and its default and paper presets beside (1 h 45 min on 2 busy cores with the models cached).
bench: venv data
	$(PY) -m unlearnlab bench --seeds 5 --presets tuned,default,paper --out results/bench

bench-figures: venv
	$(PY) -m unlearnlab figures bench results/bench --out assets

# Throughput against the seeds' DataLoader pipeline, then the thesis grid cold and warm (~15 min).
bench-perf: venv data
	$(PY) benchmarks/bench_perf.py --grid

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
