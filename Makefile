# Fresh machine: `make test` installs into .venv and runs the suite.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test clean

$(BIN)/bake-seq: setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/bake-seq

test: install
	$(BIN)/python -m pytest tests

clean:
	rm -rf $(VENV) *.egg-info
