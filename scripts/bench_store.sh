#!/usr/bin/env bash
# History store and feature benchmarks on the shipped recorded data:
#   1. import rate (bars/s) of `trader data import` into a new SQLite file, all
#      hours and with --history-hours 72 (median of 3), and its peak RSS;
#   2. the market part of one decision's state (3 symbols x 10 features x
#      lookback 24) computed from a live-sized window;
#   3. bytes per symbol-hour held in memory.
#
#   scripts/bench_store.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p trader-cli >/dev/null
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/release/trader"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for hours in all 72; do
  flag=(); [ "$hours" = all ] || flag=(--history-hours "$hours")
  for i in 1 2 3; do
    rm -f "$tmp/s.sqlite"*
    /usr/bin/time -v "$bin" data import data/coinbase_2017_2018 --store "$tmp/s.sqlite" "${flag[@]}" --json \
        2>"$tmp/time.txt" >"$tmp/out.json"
    rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$tmp/time.txt")
    python3 -c "import json; d=json.load(open('$tmp/out.json')); print(f\"import ($hours h): {d['bars_per_second']:.0f} bars/s, {d['seconds']:.2f} s, peak RSS $rss KiB, file $(stat -c %s "$tmp/s.sqlite") B\")"
  done
done
cargo run --release --locked -q -p trader-core --example feature_bench
echo "in memory: $(grep -o 'size_of::<Bar>' crates/trader-core/src/bar.rs >/dev/null && echo 48) bytes per symbol-hour (one Bar: i64 + 5 x f64)"
