#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and benchmarks of the shared
# store: `scripts/pg_cluster.sh start DIR` installs PostgreSQL from the
# distribution's packages when missing, creates a cluster in DIR (initdb as
# an unprivileged user when run as root), starts it on a Unix socket in DIR
# and a loopback port, and prints the URL of a database `trader`;
# `scripts/pg_cluster.sh stop DIR` stops it (DIR can then be removed).
#
#   url=$(scripts/pg_cluster.sh start /tmp/pg) && export TRADER_TEST_PG_URL=$url
#   ...; scripts/pg_cluster.sh stop /tmp/pg
#
# PORT (default 55432) chooses the port.
set -euo pipefail

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
port=${PORT:-55432}

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
  done
}

as_owner() {
  # initdb and postgres refuse to run as root: run them as `postgres`.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    bin=$(pg_bin)
    if [ -z "$bin" ]; then
      echo "installing PostgreSQL (Debian packages)" >&2
      { apt-get install -y --no-install-recommends postgresql >/dev/null 2>&1 \
        || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends postgresql >/dev/null; }; } >&2
      bin=$(pg_bin)
    fi
    [ -n "$bin" ] || { echo "no PostgreSQL server found or installed" >&2; exit 1; }
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir/data" -U trader --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >&2 \
      || { cat "$dir/server.log" >&2; exit 1; }
    as_owner "$bin/psql" -h "$dir" -p "$port" -U trader -d postgres -qtAc \
      "SELECT 1 FROM pg_database WHERE datname = 'trader'" | grep -q 1 \
      || as_owner "$bin/createdb" -h "$dir" -p "$port" -U trader trader
    echo "postgres://trader@127.0.0.1:$port/trader"
    ;;
  stop)
    bin=$(pg_bin)
    [ -n "$bin" ] && [ -f "$dir/data/postmaster.pid" ] \
      && as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
