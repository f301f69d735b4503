# Two entry points, each doing its own set-up on a fresh machine:
#   make demo   - the main job: a short default study, its Pareto set exported, a report
#   make test   - the whole test suite
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

.PHONY: demo test setup clean

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
	$(BIN)/python -m pytest -n 2 --durations=10

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
