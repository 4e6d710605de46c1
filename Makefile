# The README's two commands: `make run` and `make test`. Both create .venv on first use:
# `make run` installs Ilji with the extras running it here needs (`.[run]`: server, command,
# embedded PostgreSQL, personal data); `make test` adds every extra and the dev, bench and docs tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYPROJECT_SUM := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
RUN_STAMP := $(VENV)/.installed-run-$(PYPROJECT_SUM)
STAMP := $(VENV)/.installed-dev-$(PYPROJECT_SUM)

# pip's own output stays visible: a first install takes a while and should show what it does.
$(RUN_STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "== creating the virtualenv $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "== installing Ilji and what it needs to run (pip install -e '.[run]')"
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -e '.[run]'
	@rm -f $(VENV)/.installed-run-*
	@touch $@

.PHONY: node-example soak bad-input system-deps audit run quickstart cluster-sim faults test lint typecheck unit integration bench clean deploy-tools deploy-check docs docs-serve

$(STAMP): $(RUN_STAMP)
	@echo "== installing the dev, bench and docs tools (pip install -e '.[dev,bench,docs]')"
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar off --upgrade pip
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -e '.[dev,bench,docs]'
	@rm -f $(VENV)/.installed-dev-*
	@touch $@

# Serves the HTTP API, SSE and metrics on http://127.0.0.1:8000 (API docs at /docs).
# ARGS passes flags: `make run ARGS="--port 8001"`.
run: $(RUN_STAMP)
	@echo "== starting ilji serve $(ARGS) (the embedded PostgreSQL unless ILJI_DATABASE_URL is set)"
	$(BIN)/ilji serve $(ARGS)

# A guided tour of the store in the terminal.
quickstart: $(RUN_STAMP)
	$(BIN)/ilji quickstart

lint: $(STAMP)
	$(BIN)/ruff check src tests bench docs/snippets deploy/sim
	$(BIN)/ruff format --check src tests bench docs/snippets deploy/sim
	$(BIN)/lint-imports

# The guide's snippets are separate scripts (each with its own `main`), checked on their own.
typecheck: $(STAMP)
	$(BIN)/mypy
	cd docs/snippets && ../../$(BIN)/mypy --strict --cache-dir ../../.mypy_cache *.py

test: system-deps node-example lint typecheck deploy-tools
	$(BIN)/pytest -q

# Debian packages the tests need (Chromium for the console's browser tests, Node.js and npm).
system-deps:
	@scripts/install-system-deps

# The Node.js example's packages, from its lockfile (skipped when already installed).
node-example: system-deps
	@scripts/install-node-example

# Known vulnerabilities in the installed dependencies, from PyPI's advisory data. --strict
# fails when a package could not be checked, so a mirror without that data (like the one on
# our CI machine, which answers 404 per version) is an error, not a silent pass. Not part of
# `make test` for that reason; see docs/en/security.md.
audit: $(STAMP)
	$(BIN)/pip-audit --strict --skip-editable --progress-spinner off

bench: $(STAMP)
	$(BIN)/python bench/append.py

# Soak: 15 minutes of mixed traffic against a server and a projection worker (docs/assets/soak).
soak: $(STAMP)
	$(BIN)/python bench/soak.py --minutes 15

# Bad input: schemathesis, the abuse catalogue, slow clients, 500 SSE streams, hypothesis
# fuzzing; the report goes to docs/assets/abuse.
bad-input: $(STAMP)
	$(BIN)/python bench/bad_input.py

clean:
	rm -rf $(VENV) $(DEPLOY_VENV) .pytest_cache .mypy_cache .ruff_cache build dist

# Tools for tests/deploy in their own venv: checkov pins older packaging/python-dateutil.
DEPLOY_VENV := .venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed-$(shell cat deploy/requirements-tools.txt | cksum | cut -d' ' -f1)

$(DEPLOY_STAMP): deploy/requirements-tools.txt
	@test -x $(DEPLOY_VENV)/bin/python || $(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DEPLOY_VENV)/bin/python -m pip install --quiet -r deploy/requirements-tools.txt
	@rm -f $(DEPLOY_VENV)/.installed-*
	@touch $@

deploy-tools: $(DEPLOY_STAMP)

deploy-check: $(STAMP) $(DEPLOY_STAMP)
	$(BIN)/pytest -q tests/deploy

# The guide (docs/en, docs/ko) as a static site; `make docs-serve` to read it locally.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict -d build/site

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

# Rehearses the Kubernetes topology on this machine: APIs, workers and faults (about 75 s).
cluster-sim: $(STAMP)
	$(BIN)/python deploy/sim/cluster_sim.py

# Fault injection: each scenario 5 times, a table of lost/duplicate/partial counts (all must be 0).
faults: $(STAMP)
	$(BIN)/python bench/faults.py
