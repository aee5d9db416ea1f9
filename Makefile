# The two set-up commands of the README: `make demo` (the main job) and `make test`.
# Each creates the virtual environment when it is missing and installs into it; the
# constraints file pins torch to the local CPU build so nothing pulls CUDA wheels.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install clean-data

$(BIN)/segloop: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[train,serve,dev]'
	touch $@

install: $(BIN)/segloop

# The whole loop on the embedded default: data, then every round of params.yaml
# (train, export, label, select, eval) and the report; dvc runs the stages' segloop commands.
demo: $(BIN)/segloop
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro
	@echo "metrics: $(BIN)/dvc metrics show   runs: $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db"

test: $(BIN)/segloop
	$(BIN)/python -m pytest

lint: $(BIN)/segloop
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy segloop training export inference_server

clean-data:
	rm -rf data runs rounds reports mlflow.db mlruns dvc.lock
