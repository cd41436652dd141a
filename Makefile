# Shortcuts for the scripts in scripts/ (which work without make).
.PHONY: demo test lint bench clean

demo:
	scripts/demo

test:
	scripts/test

bench:
	scripts/bootstrap && .venv/bin/python -m bench

lint:
	scripts/bootstrap && scripts/check --lint-only

clean:
	rm -rf .venv .cloudctl .cloudctl-demo .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis
