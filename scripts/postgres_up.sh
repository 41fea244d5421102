#!/usr/bin/env bash
# Start Debian's PostgreSQL (installing it if missing) and make sure the role
# `portal` (password `portal`, may create the test database) and its database exist.
# Used by .ci/run; run it once as root on a developer machine too, then
#   DATABASE_URL=postgres://portal:portal@127.0.0.1:5432/portal make test-postgres
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q "^$version main"; then
  pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start 2>/dev/null || true
for _ in $(seq 1 30); do
  su postgres -c "pg_isready -q" && break
  sleep 1
done
exists=$(su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='portal'\"")
if [ "$exists" != "1" ]; then
  su postgres -c "psql -qc \"CREATE ROLE portal LOGIN CREATEDB PASSWORD 'portal'\""
fi
# The database the README's DATABASE_URL and `make bench` name (the benches make their
# throwaway databases next to it), owned by the role so its migrations may create pg_trgm.
exists=$(su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='portal'\"")
if [ "$exists" != "1" ]; then
  su postgres -c "createdb -O portal portal"
fi
echo "PostgreSQL $version is up; role and database portal ready"
