# Shortcuts for the scripts in scripts/ (they do the work; see README.md).
VENV ?= .venv
export VENV

.PHONY: run test lint fmt bench setup

run:  ## set up and run web + worker + scheduler (Ctrl-C stops all)
	./scripts/run

test:  ## set up, lint, check formatting, run the whole test suite (what CI runs)
	./scripts/test

setup:  ## venv, packages, services, database, .env
	./scripts/setup

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup  ## every benchmark in turn, full size (README: Benchmarks; takes a while)
	$(VENV)/bin/python -m bench
