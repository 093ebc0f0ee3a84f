# The two commands in the README: `make demo` and `make test`. Every target installs what it
# needs first (scripts/setup.sh is idempotent and quiet on a second run).
.PHONY: setup demo test lint stack-up stack-down

VENV := .venv/bin

setup:
	@scripts/setup.sh

demo: setup
	@$(VENV)/kdm stack up
	@$(VENV)/kdm stack smoke
	@$(VENV)/kdm demo

lint: setup
	@$(VENV)/ruff check .
	@$(VENV)/mypy

test: lint
	@$(VENV)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

stack-up: setup
	@$(VENV)/kdm stack up

stack-down:
	@$(VENV)/kdm stack down
