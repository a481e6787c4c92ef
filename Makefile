# Shortcuts for the scripts in scripts/ (they do the work; see README.md).
VENV ?= .venv
export VENV

.PHONY: run test lint fmt bench setup setup-dev

run:  ## set up and run web + worker + scheduler (Ctrl-C stops all)
	./scripts/run

test:  ## set up, lint, check formatting, run the whole test suite (what CI runs)
	./scripts/test

setup:  ## venv, the app's packages, services, database, .env
	./scripts/setup

setup-dev:  ## the same, with the development packages (tests, lint, benchmarks)
	./scripts/setup --dev

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: setup-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup-dev  ## every benchmark in turn, full size (docs/benchmarks.md; takes a while)
	$(VENV)/bin/python -m bench
