# Entry points, each doing its own set-up on a fresh machine:
#   make demo        - the main job: a short default study, its Pareto set exported, a report
#   make test        - the test suite without the slow, thorough cases (minutes)
#   make test-slow   - the slow cases (CI runs them too)
#   make test-lowest - the suite against the lowest versions pyproject.toml allows (CI)
#   make lint        - ruff's formatter and linter (configured in pyproject.toml; CI)
#   make docs        - the documentation site into site/ (mkdocs build --strict; CI)
#   make setup       - the virtual environment alone (.venv: CPU torch, then this package)
# The virtual environment gets the CPU build of PyTorch first, so that installing the
# package (torch>=2.13,<3) finds torch satisfied and never pulls a CUDA build.

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
# Outside this project's machines, point pip at PyTorch's CPU wheels, e.g.
#   make test TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"
TORCH_INDEX ?=
DEMO_TRIALS ?= 30
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The lowest versions pyproject.toml allows of the libraries whose API we lean on most;
# CI runs the suite on them too, so that the lower bounds stay true.
LOWEST ?= optuna==5.0.0
LOWEST_VENV := .venv-lowest

.PHONY: demo test test-slow test-lowest lint docs setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION) $(TORCH_INDEX)
	$(BIN)/python -m pip install --quiet -e ".[test,litert]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/attend-search run --budget $(DEMO_TRIALS)
	$(BIN)/attend-search export default --pareto --format json,onnx,pt2 --out exports --force
	$(BIN)/attend-search report default --out report.html

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow" --durations=10

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

# the docs extra on top of the environment; --strict fails on a broken link or API page
docs: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "slow and not alone" --durations=10
	$(BIN)/python -m pytest -m "slow and alone" --durations=10

# without the litert extra (its tests skip): the bounds checked are the core's
test-lowest:
	rm -rf $(LOWEST_VENV)
	$(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOWEST_VENV)/bin/python -m pip install --quiet torch==$(TORCH_VERSION) $(TORCH_INDEX)
	$(LOWEST_VENV)/bin/python -m pip install --quiet -e ".[test]" $(LOWEST)
	$(LOWEST_VENV)/bin/python -m pip list 2>/dev/null | grep -iE "^(optuna|torch) "
	$(LOWEST_VENV)/bin/python -m pytest -n 2 -m "not slow"

clean:
	rm -rf $(VENV) $(LOWEST_VENV) build site *.egg-info src/*.egg-info
