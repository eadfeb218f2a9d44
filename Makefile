# The two commands of the README. Both set up .venv on first use.
.PHONY: demo test lint

demo:  ## the closed loop on embedded defaults: drift -> detection -> retraining -> promotion -> serving
	bash scripts/bootstrap.sh
	.venv/bin/driftline up --demo

test:  ## run every test (unit + integration against the real broker, MariaDB and SQLite)
	bash scripts/test.sh

lint:
	bash scripts/bootstrap.sh
	.venv/bin/ruff check src services serving tests bench
	.venv/bin/ruff format --check src services serving tests bench
	.venv/bin/mypy
