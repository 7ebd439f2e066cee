# Two commands do all the set-up: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
             if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3,11) <= sys.version_info[:2] <= (3,12))' 2>/dev/null; then \
               command -v $$p; break; fi; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench chaos lock messages clean browser-deps bench-deps ops-deps static

## A developer's venv: the runtime lock and the dev lock (embedded servers, tests, bench, lint).
$(STAMP): requirements/main.txt requirements/dev.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "Confide needs CPython 3.11 or 3.12 on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/main.txt -r requirements/dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## libmagic is checked on every install too: a venv kept from before it was needed still gets it.
install: $(STAMP)
	@bash scripts/ensure-libmagic

## Start web, worker and beat (plus embedded PostgreSQL and Redis when DATABASE_URL/REDIS_URL are unset).
run: install
	$(BIN)/confide run

## Run the tests against real PostgreSQL, Redis, Celery, SMTP, Chromium, nginx and promtool.
test: install browser-deps ops-deps static
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Debian's chromium for the browser tests (installed when missing and apt is available).
browser-deps:
	@bash scripts/ensure-chromium
	@bash scripts/ensure-nginx

## Debian's promtool for the alert-rule unit tests (installed when missing and apt is available).
ops-deps:
	@bash scripts/ensure-promtool

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## Benchmarks: figures printed as ratios to a bare baseline measured in the same run.
bench: install bench-deps
	$(BIN)/python -m bench

## Debian's wrk for the benchmarks (installed when missing and apt is available).
bench-deps:
	@bash scripts/ensure-wrk

## Attack a private copy of the system (kills, restarts, outages) and print what was lost.
chaos: install
	$(BIN)/python -m chaos

## Regenerate the hash-pinned lock files (no index or download URLs in them): first what
## production runs (with setuptools, to build the project without network), then the dev lock,
## constrained by it so that shared pins agree. Existing pins stay; `-U`/`-P` in LOCK_ARGS move them.
LOCK := $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host $(LOCK_ARGS)
lock: install
	$(LOCK) --extra ops --build-deps-for wheel -o requirements/main.txt pyproject.toml
	$(LOCK) --extra embedded --extra dev -c requirements/main.txt -o requirements/dev.txt pyproject.toml

## Extract user-facing strings into translations/messages.pot (Babel).
messages: install
	$(BIN)/pybabel extract -F babel.cfg -o translations/messages.pot .

## Gzip siblings of the static files, which aiohttp's FileResponse serves to browsers that take
## gzip (deterministic: -n keeps no name or time; tests/test_hardening.py checks they match).
static:
	for f in webapp/static/*.css webapp/static/*.js; do gzip -9 -n -k -f "$$f"; done

clean:
	rm -rf $(VENV) var test-artifacts
