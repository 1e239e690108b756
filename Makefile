# Gatehouse: `make run` starts the server on the embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000
export FLASK_APP := app:create_app

.PHONY: install run test migrate bench clean

# Reinstall whenever the dependency list changes.
$(VENV)/.installed: backend/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --only-binary=xmlsec,lxml -e "backend[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	cd backend && $(BIN)/flask db upgrade
	cd backend && ISSUER=$${ISSUER:-http://$(HOST):$(PORT)} $(BIN)/flask seed
	@echo "Gatehouse listening on http://$(HOST):$(PORT)  (API docs: http://$(HOST):$(PORT)/api/docs)"
	cd backend && ISSUER=$${ISSUER:-http://$(HOST):$(PORT)} $(BIN)/flask run --host $(HOST) --port $(PORT)

# System programs the suite drives (a browser, servers the fault tests start): installed with apt
# when run as root, otherwise named, before any test runs.
test: install
	backend/scripts/system_deps.sh
	cd backend && $(BIN)/pytest $(PYTEST_ARGS)

# Benchmark the token endpoints on PostgreSQL + Redis side by side with node-oidc-provider
# (needs wrk; see backend/scripts/bench_token.py): make bench BENCH_ARGS="--scenarios token --runs 2"
bench: install
	cd backend && PYTHONPATH=$(CURDIR)/backend $(BIN)/python scripts/bench_token.py --cpus 1 --targets gatehouse,peer --server granian,gunicorn $(BENCH_ARGS)

# Autogenerate a migration from the models: make migrate m="add invitations"; then read and edit it.
migrate: install
	cd backend && $(BIN)/flask db migrate -m "$(m)"

clean:
	rm -rf $(VENV) backend/instance backend/.pytest_cache
