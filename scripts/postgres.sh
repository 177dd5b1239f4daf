#!/usr/bin/env bash
# Sourced by scripts/test.sh: starts a throwaway PostgreSQL cluster
# (scripts/pg-cluster.sh) on a free loopback port in a temp dir, exports
# BRIDLE_TEST_POSTGRES_URL, and stops and removes it when the shell exits.
# Installs Debian's postgresql package if it is missing. Tests run with
# fsync off (throwaway data); benchmarks set BRIDLE_PG_FSYNC=on.

if ! scripts/pg-cluster.sh bin >/dev/null 2>&1; then
  echo "installing postgresql (Debian package)…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
fi

PG_DIR="$(mktemp -d /tmp/bridle-pg.XXXXXX)"
PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

scripts/pg-cluster.sh start "$PG_DIR" "$PG_PORT"

stop_postgres() {
  scripts/pg-cluster.sh stop "$PG_DIR"
}
trap stop_postgres EXIT

export BRIDLE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
echo "throwaway PostgreSQL on 127.0.0.1:$PG_PORT" >&2
