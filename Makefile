# Two commands set everything up on a fresh machine: `make run` and `make test`.
# Without DATABASE_URL / REDIS_URL both use an embedded PostgreSQL and Redis under var/.

# The newest supported interpreter that actually starts (a pyenv shim can exist yet refuse to run).
PYTHON ?= $(shell for p in python3.13 python3.12; do \
	  $$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; exit; }; \
	  v=$${p#python}; for d in $$HOME/.pyenv/versions/$$v*/bin; do \
	    [ -x $$d/$$p ] && { echo $$d/$$p; exit; }; done; \
	done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000

.PHONY: run test stop bench lint messages lock

$(STAMP): requirements-dev.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.12 or 3.13 is required (python3.13 / python3.12 on PATH)."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.txt
	touch $(STAMP)

# The app with demo data, a Celery worker and beat; Ctrl-C stops all of it.
run: $(STAMP)
	PORT=$(PORT) $(BIN)/python -m cims.devstack run

# The whole suite, browser tests included. PYTEST_ARGS narrows it, e.g. PYTEST_ARGS="-k search".
test: $(STAMP)
	$(BIN)/python -m cims.devstack test -n $${TEST_WORKERS:-2} $(PYTEST_ARGS)

# Stop the embedded PostgreSQL and Redis that manage.py commands may have left running.
stop: $(STAMP)
	$(BIN)/python -m cims.devstack stop

# List, search, reports, partitions, backups and import figures on a million demo customers (seeded once into the database cims_bench,
# which takes several minutes), then archiving on a database of its own, written to
# docs/benchmarks.md. BENCH_CUSTOMERS=20000 is quicker.
bench: $(STAMP)
	@command -v wrk >/dev/null || { \
	  sudo=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$sudo apt-get install -y wrk || { $$sudo apt-get update && $$sudo apt-get install -y wrk; }; }
	$(BIN)/python -m cims.bench
	$(BIN)/python -m cims.bench_archive

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Re-extract and compile translations after changing user-visible text.
messages: $(STAMP)
	$(BIN)/python manage.py makemessages --locale zh_Hans --no-obsolete --add-location file --ignore '.venv/*' --ignore 'var/*' --ignore 'staticfiles/*' --ignore 'tests/*'
	$(BIN)/python manage.py compilemessages --locale zh_Hans --ignore '.venv/*' --ignore 'var/*'

# Re-pin dependencies after editing pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.12 --generate-hashes -q -o requirements.txt
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.12 --generate-hashes -q -o requirements-dev.txt
