#!/usr/bin/env bash
# `trader run` benchmarks, release build, no Alpaca keys:
#   1. peak RSS (VmHWM via /usr/bin/time -v) of a 7-day replay through the
#      embedded simulator, full and lean side by side, median of 3, next to
#      what `trader budget` predicts for each;
#   2. idle CPU between polls: lean against a standalone `trader sim` at real
#      time (speed 1: no hour closes during the measurement), CPU ticks
#      (utime + stime from /proc/PID/stat) over 60 s after a 10 s start-up.
#
#   scripts/bench_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p trader-cli >/dev/null
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/release/trader"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"; pkill -P $$ || true' EXIT
unset APCA_API_KEY_ID APCA_API_SECRET_KEY
kib() { awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$1"; }
for profile in full lean; do
  runs=()
  for i in 1 2 3; do
    rm -f "$tmp/$profile.sqlite"*
    RUST_LOG=error /usr/bin/time -v "$bin" run --profile "$profile" --store "$tmp/$profile.sqlite" \
      --from 2018-10-01T00:00:00Z --until 2018-10-08T00:00:00Z --speed 100000 --json \
      >"$tmp/$profile.json" 2>"$tmp/time.txt"
    runs+=("$(kib "$tmp/time.txt")")
  done
  median=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p)
  predicted=$("$bin" budget --profile "$profile" --json 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(sum(t["ram_bytes"] for t in r["trader_terms"]))')
  python3 - "$tmp/$profile.json" "$profile" "$median" "$predicted" "${runs[*]}" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
profile, median_kib, predicted, runs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
measured = median_kib * 1024
print(f"{profile}: peak RSS {measured/1e6:.1f} MB (runs KiB: {runs}), budget predicts {predicted/1e6:.1f} MB "
      f"({(measured - predicted) / predicted * 100:+.0f} %); {s['decisions']} decisions, {s['orders']} orders, "
      f"decision latency p50 {s['decision_latency_us_p50']} us p99 {s['decision_latency_us_p99']} us, "
      f"bar handed over -> last order answered p50 {s['bar_to_order_us_p50']} us p99 {s['bar_to_order_us_p99']} us")
PY
done

# Idle CPU: a standalone simulator at real time, lean polling it every 120 s.
printf '[[keys]]\nkey_id = "PKBENCH"\nsecret_key = "bench"\n' > "$tmp/keys.toml"
RUST_LOG=error "$bin" sim --keys "$tmp/keys.toml" --start 2018-10-01T00:30:00Z --speed 1 >"$tmp/sim.url" 2>/dev/null &
sleep 1
url=$(head -1 "$tmp/sim.url")
APCA_API_KEY_ID=PKBENCH APCA_API_SECRET_KEY=bench APCA_API_BASE_URL="$url" APCA_API_DATA_URL="$url" RUST_LOG=error \
  "$bin" run --profile lean --store "$tmp/idle.sqlite" --speed 1 >/dev/null 2>&1 &
pid=$!
sleep 10   # start-up: model load, 72 h backfill, first decision
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
t0=$(ticks); sleep 60; t1=$(ticks)
kill -TERM "$pid"; wait "$pid" || true
hz=$(getconf CLK_TCK)
python3 -c "print(f'idle: {($t1 - $t0) / $hz:.2f} CPU s over 60 s between polls (lean, poll every 120 s; {($t1 - $t0) / $hz / 60 * 100:.2f} % of one core)')"
