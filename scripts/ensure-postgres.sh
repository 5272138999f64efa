#!/bin/sh
# Make sure a PostgreSQL server answers on $OLIGO_PG_HOST:$OLIGO_PG_PORT (default 127.0.0.1:5432) for the
# store and service tests: use the running one, else start an installed cluster, else install the Debian
# package (needs root) and start it. Fails loudly when none of that works: the PostgreSQL tests never skip.
set -eu
HOST="${OLIGO_PG_HOST:-127.0.0.1}"
PORT="${OLIGO_PG_PORT:-5432}"

ready() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$HOST" -p "$PORT"; }
say() { echo "ensure-postgres: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
  say "need root to $*"; exit 1; fi; }

if ready; then exit 0; fi

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  say "PostgreSQL is not installed: installing the Debian package postgresql"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
PATH="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1):$PATH"; export PATH

if command -v pg_lsclusters >/dev/null 2>&1 && [ -n "$(pg_lsclusters -h 2>/dev/null)" ]; then
  pg_lsclusters -h | while read -r version name _rest; do
    as_root pg_ctlcluster "$version" "$name" start 2>/dev/null || true
  done
else
  command -v pg_createcluster >/dev/null 2>&1 && as_root pg_createcluster --start "$(pg_config --version | sed 's/[^0-9]*\([0-9]*\).*/\1/')" main
fi

tries=0
until ready; do
  tries=$((tries + 1))
  if [ "$tries" -gt 60 ]; then say "PostgreSQL does not answer on $HOST:$PORT"; exit 1; fi
  sleep 0.5
done
# The tests connect as postgres/postgres over TCP; a fresh Debian cluster asks for a password.
as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
say "PostgreSQL is running on $HOST:$PORT"
