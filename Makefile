# The one entry point. `make run` and `make test` set everything up on a fresh Debian machine with python3.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help install run test lint fmt test-only bench openapi synth clean

help:
	@echo "make run      set up and start ghingest on the embedded SQLite default"
	@echo "make test     set up and run lint, type checks and the whole test suite"
	@echo "make bench    run the benchmarks and print figures"
	@echo "make openapi  regenerate docs/openapi.yaml from the application"
	@echo "make synth    synthesize the AWS profile's CloudFormation template into deploy/aws/cdk.out/ (offline)"

$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh $(VENV)
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/ghingest db upgrade
	$(BIN)/ghingest serve

lint: install
	$(BIN)/ruff check src tests bench scripts deploy
	$(BIN)/ruff format --check src tests bench scripts deploy
	$(BIN)/mypy src

fmt: install
	$(BIN)/ruff format src tests bench scripts deploy
	$(BIN)/ruff check --fix src tests bench scripts deploy

# The suite runs a test file per worker process (pytest-xdist), one worker per core by default: every fixture's
# servers, databases and ports are per test (or per module) and on free loopback ports. TEST_WORKERS=0: one process.
TEST_WORKERS ?= auto

test: install lint
	bash scripts/ensure-chromium.sh
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-only: install
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install
	bash bench/run.sh

openapi: install
	$(BIN)/python -m ghingest.app.openapi_export > docs/openapi.yaml

synth: install
	$(BIN)/python deploy/aws/app.py $(SYNTH_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
