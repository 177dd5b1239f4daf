#!/usr/bin/env bash
# A throwaway PostgreSQL cluster, for tests: loopback only, trust auth, fsync
# off (BRIDLE_PG_FSYNC=on for benchmarks). Used by scripts/postgres.sh and by
# the test suites themselves when BRIDLE_TEST_POSTGRES_URL is not set.
#
#   pg-cluster.sh bin             the directory of initdb and pg_ctl, or exit 3
#   pg-cluster.sh start DIR PORT  initdb DIR/data and start it on 127.0.0.1:PORT
#   pg-cluster.sh stop DIR        stop the cluster in DIR and remove DIR
#
# PostgreSQL refuses to run as root: as root, it runs as the `postgres` user.
set -euo pipefail

pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -z "$dir" ] && command -v pg_config >/dev/null 2>&1; then
    dir="$(pg_config --bindir)"
  fi
  if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
    return 3
  fi
  echo "$dir"
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "${1:-}" in
  bin)
    pg_bin || { echo "PostgreSQL (initdb, pg_ctl) is not installed" >&2; exit 3; }
    ;;
  start)
    dir="$2" port="$3"
    bin="$(pg_bin)" || { echo "PostgreSQL (initdb, pg_ctl) is not installed" >&2; exit 3; }
    [ "$(id -u)" = 0 ] && chown -R postgres "$dir"
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=${BRIDLE_PG_FSYNC:-off}" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    ;;
  stop)
    dir="$2"
    if bin="$(pg_bin)" && [ -d "$dir/data" ]; then
      as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 bin | start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
