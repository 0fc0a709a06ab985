#!/usr/bin/env bash
# Backtest throughput, plain loop vs batched first layer, at the reference
# model size (3 symbols, 10 features, lookback 24 -> 724 inputs; hidden
# [512, 256]; 503,299 parameters per member) and with the shipped profiles.
#
#   full: top 10, 120 h of history; lean: top 5, 96 h (lookback 24 + the 60 h
#   window - 1 = 83 h does not fit the shipped lean's 72 h).
#
# For each (ensemble, profile) it runs `trader backtest --out` over H1 2018
# (4,344 decided hours) ROUNDS times in three modes (plain loop, batched first
# layer, batched with the records in SQLite via --store), alternating, and prints
# one markdown row per run from resources.json: wall seconds, decided hours/s,
# decision latency p50 (per hour: portfolio part + remaining layers in batched
# mode, the whole state in plain mode), batched first layer per hour, peak RSS.
# Timings are noisy on shared machines: compare rows of one sitting.
#
#   scripts/bench_backtest.sh [ROUNDS] [FROM] [TO]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
from="${2:-2018-01-01T00:00:00Z}"
to="${3:-2018-06-30T23:00:00Z}"
cargo build --release --locked -p trader-cli >/dev/null
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/release/trader"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 scripts/gen_ensemble.py --out "$tmp/ref" --members 10 --lookback 24 --hidden 512,256 --seed 11 >/dev/null
for p in full lean; do
  sed -e "s|^dir = .*|dir = \"$tmp/ref\"|" -e "s|^history_hours = 72|history_hours = 96|" \
    "configs/$p.toml" > "$tmp/ref-$p.toml"
done
echo "| ensemble | profile | forward | records | wall s | decided h/s | latency p50 us | first layer us/h | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|"
for ensemble in reference demo; do
  for p in full lean; do
    if [ "$ensemble" = reference ]; then profile="$tmp/ref-$p.toml"; else profile="$p"; fi
    for round in $(seq "$rounds"); do
      for mode in plain batched batched-sqlite; do
        out="$tmp/out"; rm -rf "$out" "$tmp/records.sqlite"*
        store=(); [ "$mode" = batched-sqlite ] && store=(--store "$tmp/records.sqlite")
        "$bin" backtest --profile "$profile" --from "$from" --to "$to" --forward "${mode%-sqlite}" \
          "${store[@]}" --out "$out" >/dev/null
        python3 - "$out/resources.json" "$ensemble" "$p" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {sys.argv[3]} | {r['forward']} | {r['records']} | {r['seconds']:.2f} | "
      f"{r['decided_hours_per_second']:.0f} | {r['decision_latency_us_p50']} | "
      f"{r['projection_us_per_hour']:.0f} | {r['peak_rss_bytes'] / 2**20:.1f} |")
PY
      done
    done
  done
done
