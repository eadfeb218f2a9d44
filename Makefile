# The two commands of the README. Both set up .venv on first use.
.PHONY: demo test soak lint

demo:  ## the closed loop on embedded defaults: drift -> detection -> retraining -> promotion -> serving
	bash scripts/bootstrap.sh
	.venv/bin/driftline up --demo

test:  ## run every test (unit + integration against the real broker, MariaDB and SQLite)
	bash scripts/test.sh

soak:  ## the soak of make test (1,000 readings/s through every service) for 10 minutes
	bash scripts/bootstrap.sh
	bash scripts/ensure-mariadb.sh
	DRIFTLINE_SOAK_SECONDS=600 .venv/bin/python -m pytest tests/integration/test_soak.py -s

lint:
	bash scripts/bootstrap.sh
	.venv/bin/ruff check src services serving tests bench
	.venv/bin/ruff format --check src services serving tests bench
	.venv/bin/mypy
