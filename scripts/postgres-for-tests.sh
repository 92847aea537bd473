#!/usr/bin/env bash
# Start a throwaway PostgreSQL on 127.0.0.1 for the tests and print its URL.
# Usage: eval "$(scripts/postgres-for-tests.sh)"   -> exports ELSPETH_TEST_POSTGRES_URL
#        scripts/postgres-for-tests.sh --stop        -> stops it and deletes its data directory
# ELSPETH_PG_DIR and ELSPETH_PG_PORT place it; ELSPETH_PG_FSYNC=on keeps PostgreSQL's durable default (the
# tests turn fsync off for speed; a benchmark wants what production runs).
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ]; then
  echo "echo 'PostgreSQL is not installed; the PostgreSQL tests will be skipped' >&2"
  exit 0
fi
dir=${ELSPETH_PG_DIR:-/tmp/elspeth-test-pg}
port=${ELSPETH_PG_PORT:-54329}
run_as() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
if [ "${1:-}" = "--stop" ]; then
  if [ -f "$dir/PG_VERSION" ]; then
    run_as "$bin/pg_ctl -D $dir -m fast stop" >/dev/null 2>&1 || true
    rm -rf "$dir"
  fi
  exit 0
fi
if [ ! -f "$dir/PG_VERSION" ]; then
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  run_as "$bin/initdb -D $dir -A trust -U elspeth >/dev/null"
fi
if ! run_as "$bin/pg_ctl -D $dir status" >/dev/null 2>&1; then
  run_as "$bin/pg_ctl -D $dir -o '-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=${ELSPETH_PG_FSYNC:-off}' -l $dir/log -w start" >/dev/null
fi
run_as "$bin/psql -h 127.0.0.1 -p $port -U elspeth -d postgres -tAc \"SELECT 1 FROM pg_database WHERE datname='elspeth_test'\"" | grep -q 1 \
  || run_as "$bin/createdb -h 127.0.0.1 -p $port -U elspeth elspeth_test"
echo "export ELSPETH_TEST_POSTGRES_URL=postgresql+psycopg://elspeth@127.0.0.1:$port/elspeth_test"
