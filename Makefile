# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-postgres lint format migrations-check bench chaos conformance clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,production]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) scripts/run_demo.py

test: install
	@scripts/ensure_chromium.sh
	$(PY) -m pytest -m "not openstack"

# The quick loop, on every core (under a minute here): no browser, worker, real-cloud
# or `slow` tests, and not devcloud's own suite (`pytest tests/devcloud` after changing
# devcloud/). `make test` runs them all.
.PHONY: test-fast
test-fast: install
	$(PY) -m pytest -m "not browser and not worker and not openstack and not slow" \
		--ignore=tests/devcloud -n auto --dist worksteal -q

# The suite (but devcloud's own tests, which use no database) on PostgreSQL:
# DATABASE_URL=postgres://portal:portal@127.0.0.1:5432/portal (scripts/postgres_up.sh).
test-postgres: install
	@test -n "$(DATABASE_URL)" || (echo "set DATABASE_URL=postgres://... (see README)"; exit 2)
	@scripts/ensure_chromium.sh
	$(PY) -m pytest -m "not openstack" --ignore=tests/devcloud

# mypy: strict for the core; elsewhere only errors not in mypy-baseline.txt fail. Its
# Django plugin loads the settings, which want DEBUG=1 (or a SECRET_KEY).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	DEBUG=1 $(VENV)/bin/mypy | $(VENV)/bin/mypy-baseline filter

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

migrations-check: install
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run

# Every benchmark on SQLite and on PostgreSQL (BENCH_POSTGRES_URL; scripts/postgres_up.sh
# makes the default one), then one table of every figure with its goal, side by side;
# the target fails if any figure missed its goal. `bench/run_all.py --only pages_bench`.
bench: install
	$(PY) bench/run_all.py

# Jobs under injected faults, worker and Redis kills, beside a site that hangs; prints
# its figures (~4 min). `make chaos CHAOS_LOAD=1`: with one busy process per core.
chaos: install
	$(PY) scripts/chaos.py

# tempest (in its own venv under var/) against a fresh devcloud; see devcloud/README.md.
conformance:
	$(PYTHON) -m devcloud.conformance

clean:
	rm -rf var test-artifacts

# A real OpenStack cloud (Keystone, Glance, Placement, Nova, Neutron from PyPI) on
# 127.0.0.1:25000-25062, state under var/openstack; see scripts/openstack/README.md.
.PHONY: openstack openstack-stop openstack-status test-openstack
openstack:
	$(PYTHON) scripts/openstack/up.py

openstack-stop:
	$(PYTHON) scripts/openstack/up.py stop

openstack-status:
	$(PYTHON) scripts/openstack/up.py status

# The tests marked `openstack` (tests/openstack), against the cloud `make openstack` started.
test-openstack: install
	PORTAL_REQUIRE_OPENSTACK=1 $(PY) -m pytest -m openstack tests/openstack
