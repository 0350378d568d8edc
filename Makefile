PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

.PHONY: demo test lint fmt clean chromium audit

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tierdesk demo

# The admin's browser tests (tests/web/test_admin_browser.py) drive Debian's Chromium through Playwright.
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "Installing Chromium for the browser tests: apt-get install chromium"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "NOTE: could not install Chromium: the browser tests will be skipped"; \
	  else \
	    echo "NOTE: $(CHROMIUM) is missing and we are not root: the browser tests will be skipped" \
	      "(install it with: sudo apt-get install chromium)"; \
	  fi; \
	fi

# Last: the dependency audit fails on a known vulnerability; where pip-audit cannot reach its services
# it says DEPENDENCY AUDIT NOT DONE and why, and passes (`make audit` fails then too).
test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest
	$(BIN)/python tools/audit_deps.py

audit: $(STAMP)
	$(BIN)/python tools/audit_deps.py --strict

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
