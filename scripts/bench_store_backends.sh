#!/usr/bin/env bash
# The store's cost, SQLite file against PostgreSQL, side by side in one sitting
# (issue 20), on the shipped recorded data (data/coinbase_2017_2018), profile lean:
#
#   1. `trader backtest --store` throughput: a BT_FROM..BT_TO backtest (default
#      H1 2018, 4,344 decided hours, as in BENCHMARKS.md's backtest tables) with its records in memory (no --store: the
#      reference), in a fresh SQLite file, and in a fresh PostgreSQL database;
#      decided hours per second of the backtest itself (resources.json of --out)
#      and the wall time of the whole process.
#   2. `trader run` hour cost: a RUN_FROM..RUN_UNTIL replay (default 7 days, 168
#      decided hours) through the embedded simulator (no Alpaca keys), on a
#      fresh SQLite file and a fresh PostgreSQL database, twice:
#      - paced, at RUN_SPEED (default 100000, as scripts/bench_run.sh: one hour
#        per poll, as a live trader sees them): the summary's real-time fields
#        per hour: decision_split.orders_us (median over all decided hours:
#        targets, planned orders, the records written, sending),
#        bar_to_order_us (bar handed over -> the hour's last order answered,
#        hours with orders only), decision latency; and wall time (mostly the
#        replay's pace: 168 h at 100000 = 6 s);
#      - flat out, at FAST_SPEED (default 1e7: an hour closes every 0.36 ms,
#        the loop catches up several hours per poll, bound by its own work):
#        wall ms per decided hour, whose difference between the backends is
#        the store's.
#      Same replay, the same decisions and orders on both (in the table), so
#      the difference is the store. On PostgreSQL also the transactions and
#      rows a paced run wrote per decided hour (pg_stat_database).
#   3. a markdown table: backend, metric, median, min, max, n.
#
# REPS (default 3) repetitions, the backends alternated within each.
# PostgreSQL: PG_URL (postgres://USER@HOST:PORT/DB of a server where USER may
# CREATE DATABASE) or, unset, a throwaway PostgreSQL cluster in a temporary
# directory on PORT (default 55500) started like scripts/pg_cluster.sh but with
# the server's default durability (fsync, synchronous_commit and full_page_writes
# on: NOT pg_cluster.sh's fsync=off), stopped at the end. Each rep gets its own
# database, dropped afterwards. PG_ASYNC=1 (default) adds the backend
# `pg-async`: the same server, the database set to synchronous_commit=off (its
# commits do not wait for the WAL flush, as SQLite's WAL + synchronous=NORMAL
# does not fsync at commit), to split PostgreSQL's cost into durability and
# round trips; PG_ASYNC=0 leaves it out.
#
#   cargo build --release --locked -p trader-cli
#   scripts/bench_store_backends.sh [path/to/trader]        # or BIN=...; default target/release/trader
#   REPS=5 PORT=55501 scripts/bench_store_backends.sh
#
# (scripts/bench_store.sh is the history store's import and feature benchmark.)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-${BIN:-target/release/trader}}
[ -x "$bin" ] || { echo "no trader binary at $bin (build: cargo build --release --locked -p trader-cli)" >&2; exit 2; }
bin=$(realpath "$bin")
reps=${REPS:-3}
bt_from=${BT_FROM:-2018-01-01T00:00:00Z}
bt_to=${BT_TO:-2018-06-30T23:00:00Z}
run_from=${RUN_FROM:-2018-10-01T00:00:00Z}
run_until=${RUN_UNTIL:-2018-10-08T00:00:00Z}
run_speed=${RUN_SPEED:-100000}
fast_speed=${FAST_SPEED:-10000000}
pg_async=${PG_ASYNC:-1}
port=${PORT:-55500}
profile=lean
unset APCA_API_KEY_ID APCA_API_SECRET_KEY TRADER_STORE_URL

# Each `trader run` takes its profile's lock in its own store; a lean trader
# running elsewhere on this machine would also compete for the two cores.
if pgrep -af 'trader run' | grep -q -- "--profile $profile"; then
  echo "another \`trader run --profile $profile\` is running; stop it first:" >&2
  pgrep -af 'trader run' >&2; exit 1
fi

tmp=$(mktemp -d)
pg_dir=""
pg_bin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/psql" ] && pg_bin=$d; done
[ -n "$pg_bin" ] || { echo "no PostgreSQL client (psql) found" >&2; exit 1; }
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  if [ -n "$pg_dir" ] && [ -f "$pg_dir/data/postmaster.pid" ]; then
    as_owner "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if [ -n "${PG_URL:-}" ]; then
  base_url=$PG_URL
else
  # scripts/pg_cluster.sh's start, without `-c fsync=off`: default durability.
  pg_dir=$tmp/pg
  mkdir -p "$pg_dir"
  if [ "$(id -u)" = 0 ]; then chown postgres "$pg_dir"; chmod 755 "$tmp"; fi
  as_owner "$pg_bin/initdb" -D "$pg_dir/data" -U trader --auth=trust -E UTF8 >"$tmp/initdb.log" 2>&1 \
    || { cat "$tmp/initdb.log" >&2; exit 1; }
  as_owner "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
    -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null \
    || { cat "$pg_dir/server.log" >&2; exit 1; }
  base_url="postgres://trader@127.0.0.1:$port/postgres"
fi
# psql takes the URL; the admin connection goes to the server's `postgres` database.
admin_url=${base_url%/*}/postgres
psql_admin() { PGOPTIONS='-c client_min_messages=warning' "$pg_bin/psql" "$admin_url" -qtAX -v ON_ERROR_STOP=1 -c "$1"; }
pg_version=$(psql_admin "SHOW server_version")
pg_durability=$(psql_admin "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings
  WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'shared_buffers')")
fresh_db() { # NAME [async] -> URL of a new, empty database
  psql_admin "DROP DATABASE IF EXISTS $1" >/dev/null
  psql_admin "CREATE DATABASE $1" >/dev/null
  # pg-async: the same server, its commits not waiting for the WAL flush
  # (SQLite's WAL + synchronous=NORMAL does not fsync at commit either).
  if [ "${2:-}" = async ]; then psql_admin "ALTER DATABASE $1 SET synchronous_commit = off" >/dev/null; fi
  echo "${base_url%/*}/$1"
}
drop_db() { psql_admin "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null; }

rows=$tmp/rows.tsv   # backend <TAB> metric <TAB> value
: >"$rows"
now() { date +%s.%N; }
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$rows"; }

backtest() { # BACKEND STORE-ARG... ; records wall s and decided h/s
  local backend=$1; shift
  rm -rf "$tmp/bt-out"
  local t0 t1
  t0=$(now)
  RUST_LOG=error "$bin" backtest --profile "$profile" --from "$bt_from" --to "$bt_to" \
    --out "$tmp/bt-out" --json "$@" >"$tmp/bt.json" 2>"$tmp/bt.err" \
    || { cat "$tmp/bt.err" >&2; exit 1; }
  t1=$(now)
  python3 - "$tmp/bt-out/resources.json" "$tmp/bt.json" "$t0" "$t1" "$backend" >>"$rows" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); m = json.load(open(sys.argv[2]))
t0, t1, b = float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
hours = m["decisions"] + m["skipped"]
for metric, v in [
    ("backtest: decided h/s (in-process)", r["decided_hours_per_second"]),
    ("backtest: ms per decided hour (in-process)", r["seconds"] * 1000 / hours),
    ("backtest: wall s (whole process)", t1 - t0),
    ("backtest: decided hours", hours),
    ("backtest: orders", m["orders"]),
]:
    print(f"{b}\t{metric}\t{v}")
PY
}

run_replay() { # BACKEND STORE SPEED paced|fast ; records wall and summary fields
  local backend=$1 store=$2 speed=$3 mode=$4 t0 t1
  t0=$(now)
  RUST_LOG=error "$bin" run --profile "$profile" --store "$store" --from "$run_from" --until "$run_until" \
    --speed "$speed" --no-metrics --json >"$tmp/run.json" 2>"$tmp/run.err" \
    || { cat "$tmp/run.err" >&2; exit 1; }
  t1=$(now)
  python3 - "$tmp/run.json" "$t0" "$t1" "$backend" "$mode" >>"$rows" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t0, t1, b, mode = float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
split = s["decision_split"]
wall = [
    (f"run {mode}: wall s (whole process)", t1 - t0),
    (f"run {mode}: wall ms per decided hour", (t1 - t0) * 1000 / max(s["decisions"], 1)),
    (f"run {mode}: decision_split.orders_us p50", split["orders_us"]),
]
if mode == "paced":
    rows = wall + [
        ("run paced: bar_to_order_us p50 (hours with orders)", s["bar_to_order_us_p50"]),
        ("run paced: bar_to_order_us p99 (hours with orders)", s["bar_to_order_us_p99"]),
        ("run paced: decision latency p50 us", s["decision_latency_us_p50"]),
        ("run paced: decision_split.inference_us p50", split["inference_us"]),
        ("run paced: decisions", s["decisions"]),
        ("run paced: orders", s["orders"]),
        ("run paced: fills", s["fills"]),
        ("run paced: peak RSS MB", s["peak_rss_bytes"] / 1e6),
    ]
else:
    rows = wall + [(f"run fast: decisions", s["decisions"]), (f"run fast: orders", s["orders"])]
for metric, v in rows:
    print(f"{b}\t{metric}\t{v}")
PY
}

pg_writes() { # DB BACKEND ; transactions and rows written per decided hour (last run's decisions)
  sleep 1   # the run's backends report their counters when they end
  local stats
  stats=$(psql_admin "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database WHERE datname = '$1'")
  python3 - "$tmp/run.json" "$stats" "$2" >>"$rows" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
commits, ins, upd, dele = (int(x) for x in sys.argv[2].split("|"))
backend = sys.argv[3]
h = max(s["decisions"], 1)
for metric, v in [
    ("run paced: PG commits per decided hour (incl. migrations)", commits / h),
    ("run paced: PG rows inserted per decided hour", ins / h),
    ("run paced: PG rows updated per decided hour", upd / h),
]:
    print(f"{backend}\t{metric}\t{v}")
PY
}

echo "trader: $bin; PostgreSQL $pg_version ($pg_durability)" >&2
for i in $(seq 1 "$reps"); do
  echo "rep $i/$reps: backtest $bt_from .. $bt_to (memory, sqlite, postgres, pg-async)" >&2
  backtest memory
  rm -f "$tmp/bt.sqlite"*
  backtest sqlite --store "$tmp/bt.sqlite"
  url=$(fresh_db "bench_bt_$i")
  backtest postgres --store "$url"
  drop_db "bench_bt_$i"
  if [ "$pg_async" = 1 ]; then
    url=$(fresh_db "bench_bta_$i" async)
    backtest pg-async --store "$url"
    drop_db "bench_bta_$i"
  fi
  for mode in paced fast; do
    speed=$run_speed; [ "$mode" = fast ] && speed=$fast_speed
    echo "rep $i/$reps: run $run_from .. $run_until, $mode (speed $speed): sqlite, postgres, pg-async" >&2
    rm -f "$tmp/run.sqlite"*
    run_replay sqlite "$tmp/run.sqlite" "$speed" "$mode"
    url=$(fresh_db "bench_${mode}_$i")
    run_replay postgres "$url" "$speed" "$mode"
    [ "$mode" = paced ] && pg_writes "bench_${mode}_$i" postgres
    drop_db "bench_${mode}_$i"
    if [ "$pg_async" = 1 ]; then
      url=$(fresh_db "bench_${mode}a_$i" async)
      run_replay pg-async "$url" "$speed" "$mode"
      [ "$mode" = paced ] && pg_writes "bench_${mode}a_$i" pg-async
      drop_db "bench_${mode}a_$i"
    fi
  done
done

echo
echo "PostgreSQL $pg_version ($pg_durability; pg-async: its database set to synchronous_commit=off); SQLite: WAL, synchronous=NORMAL (the store's settings)"
echo "backtest $profile $bt_from .. $bt_to; run $profile $run_from .. $run_until at speed $run_speed (paced) and $fast_speed (fast); $reps reps, alternated"
echo
python3 - "$rows" <<'PY'
import sys
from collections import OrderedDict
from statistics import median
data = OrderedDict()
for line in open(sys.argv[1]):
    backend, metric, value = line.rstrip("\n").split("\t")
    data.setdefault((metric, backend), []).append(float(value))
order = {"memory": 0, "sqlite": 1, "postgres": 2, "pg-async": 3}
keys = sorted(data, key=lambda k: (list(dict.fromkeys(m for m, _ in data)).index(k[0]), order[k[1]]))
fmt = lambda v: f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"
print("| backend | metric | median | min | max | n |")
print("|---|---|---|---|---|---|")
for metric, backend in keys:
    v = data[(metric, backend)]
    print(f"| {backend} | {metric} | {fmt(median(v))} | {fmt(min(v))} | {fmt(max(v))} | {len(v)} |")
PY
