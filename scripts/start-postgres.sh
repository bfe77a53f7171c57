#!/usr/bin/env bash
# Install (if missing) and start a local PostgreSQL for the test suite, on 127.0.0.1:5432, with a
# role and database `ctip`/`ctip_test`. Prints the URL to export as TEST_POSTGRES_URL.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
  pg_createcluster "$version" main >&2
fi
pg_ctlcluster "$version" main start >&2 2>/dev/null || true
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -p 5432 -q && break
  sleep 1
done
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_roles WHERE rolname='ctip'\" | grep -q 1 || psql -q -c \"CREATE ROLE ctip LOGIN PASSWORD 'ctip' CREATEDB\"" >&2
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname='ctip_test'\" | grep -q 1 || createdb -O ctip ctip_test" >&2
echo "postgresql://ctip:ctip@127.0.0.1:5432/ctip_test"
