# Fresh machine: `make test` installs into .venv and runs the suite; `make demo` renders
# a degraded plate with the shipped model and writes a before/after contact sheet.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test demo bench clean

$(BIN)/bake-seq: setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,export,zoo,test]'
	touch $@

install: $(BIN)/bake-seq

test: install
	$(BIN)/python -m pytest tests

demo: install
	$(BIN)/bake-seq demo --out demo_out
	@echo "before/after contact sheet: demo_out/contact_sheet.png"

bench: install
	$(BIN)/bake-seq bench --json-file bench.json

clean:
	rm -rf $(VENV) *.egg-info
