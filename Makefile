# Two commands take a fresh clone to results: `make repro` (the pipeline) and `make test` (the tests).
# Both bootstrap the project-local virtual environment first, so nothing needs installing by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Offline and quiet: no analytics daemons, no hub retries, Prefect state inside the project.
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME := $(CURDIR)/.prefect
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: repro test lint bootstrap smoke dashboard flow serve bench bench-quick chromium

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	@touch $(STAMP)

bootstrap: $(STAMP)

## The main job: every stage of dvc.yaml on params.yaml (the embedded default).
repro: $(STAMP)
	$(BIN)/dvc repro

## The Prefect dashboard: a real Prefect server and UI on http://127.0.0.1:4200 (Ctrl-C stops it).
PREFECT_PORT ?= 4200
dashboard: $(STAMP)
	PREFECT_UI_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api \
		$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

## dvc.yaml as a Prefect flow on that server: stale stages run, independent ones concurrently.
flow: $(STAMP)
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/python -m pipeline.flow

## Runs started from the dashboard: the flow served as the deployment digit-run/digit on that
## server (its Run button, or `prefect deployment run digit-run/digit`); Ctrl-C stops serving.
serve: $(STAMP)
	PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api $(BIN)/python -m pipeline.serve

## The tests: unit tests and an end-to-end run of the smoke preset through the real `dvc repro`.
test: $(STAMP) chromium
	$(BIN)/python -m pytest -q

## tests/test_browser.py drives Debian's chromium through Playwright (which downloads no browser).
chromium:
	@command -v chromium >/dev/null || apt-get install -y -qq chromium >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

lint: $(STAMP)
	$(BIN)/ruff check digit pipeline tests benchmarks
	$(BIN)/ruff format --check digit pipeline tests benchmarks

## Speed and memory against same-run baselines -> reports/benchmarks.md (not part of `make test`).
## Items 3-6 and 8 (+ the GPU section when reports/benchmarks_gpu.json exists); the items that need
## the whole DAG run by hand: `python -m benchmarks.run --items repro --repro-log LOG`, `noop`, `flow`.
bench: $(STAMP)
	nice -n 10 $(BIN)/python -m benchmarks.run

bench-quick: $(STAMP)
	nice -n 10 $(BIN)/python -m benchmarks.run --quick
