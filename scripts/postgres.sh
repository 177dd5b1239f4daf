#!/usr/bin/env bash
# Sourced by scripts/test.sh: starts a throwaway PostgreSQL cluster (initdb +
# pg_ctl) on a free loopback port in a temp dir, exports
# BRIDLE_TEST_POSTGRES_URL, and stops and removes it when the shell exits.
# Installs Debian's postgresql package if it is missing. Tests run with
# fsync off (throwaway data); benchmarks set BRIDLE_PG_FSYNC=on.

pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

if [ -z "$(pg_bin)" ]; then
  echo "installing postgresql (Debian package)…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
fi
PG_BIN="$(pg_bin)"

PG_DIR="$(mktemp -d /tmp/bridle-pg.XXXXXX)"
PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

# PostgreSQL refuses to run as root: run it as the package's `postgres` user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres "$PG_DIR"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >"$PG_DIR/initdb.log" 2>&1 \
  || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
  -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=${BRIDLE_PG_FSYNC:-off}" start >/dev/null \
  || { cat "$PG_DIR/server.log" >&2; exit 1; }

stop_postgres() {
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}
trap stop_postgres EXIT

export BRIDLE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
echo "throwaway PostgreSQL on 127.0.0.1:$PG_PORT" >&2
