# Two commands a new user needs: `make demo` and `make test`. Both build .venv on first use.
# `make docs` builds the documentation site into site/ (offline, --strict); `make docs-serve` previews it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test install docs docs-serve docs-figures clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/kdistill demo $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

DOCS_STAMP := $(VENV)/.docs-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	rm -f $(VENV)/.docs-*
	touch $@

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict $(ARGS)
	$(PY) scripts/check_site_offline.py site

docs-serve: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve $(ARGS)

# The README's and the site's figures, from a real `kdistill demo --seeds 3` (a few minutes).
docs-figures: $(STAMP)
	scripts/docs_figures.sh

clean:
	rm -rf $(VENV) build site src/*.egg-info .pytest_cache
