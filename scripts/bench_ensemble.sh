#!/usr/bin/env bash
# Ensemble benchmarks at the reference size (3 symbols, 10 features, lookback 24
# -> 724 inputs; hidden [512, 256]; 3 outputs; 503,299 parameters per member):
#   1. decision latency (median, p99) for N = 1, 5, 10 members, 1 and 2 threads,
#      sequential vs stacked, f32 vs f16 (`trader ensemble bench`, 1000 decisions);
#   2. peak RSS of `trader ensemble infer` (/usr/bin/time -v, median of 3) beside
#      what `trader budget` predicts for the same members and dtype (its terms
#      that an `infer` process has: runtime base, weights, load transient,
#      activations, threads; not history or store cache).
# Prints two markdown tables. Timings are noisy on shared machines: compare
# rows of one run, not runs of different days.
#
#   scripts/bench_ensemble.sh [ITERS]
set -euo pipefail
cd "$(dirname "$0")/.."
iters="${1:-1000}"
cargo build --release --locked -p trader-cli >/dev/null
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/release/trader"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 scripts/gen_ensemble.py --out "$tmp/ref" --members 10 --lookback 24 --hidden 512,256 --seed 11
python3 -c "import random; random.seed(1); print([round(random.uniform(-1, 1), 4) for _ in range(724)])" > "$tmp/state.json"
mkdir -p "$tmp/configs"
sed -e "s|^dir = .*|dir = \"$tmp/ref\"|" configs/full.toml > "$tmp/configs/ref.toml"

echo "| N | dtype | threads | mode | median us | p99 us |"
echo "|---|---|---|---|---|---|"
for n in 1 5 10; do
  for dtype in f32 f16; do
    for threads in 1 2; do
      for mode in sequential stacked; do
        [ "$dtype" = f16 ] && [ "$threads" = 2 ] && continue
        "$bin" ensemble bench "$tmp/ref" --top-n "$n" --dtype "$dtype" --threads "$threads" \
            --mode "$mode" --iters "$iters" --json \
          | python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"| $n | $dtype | $threads | $mode | {d['median_us']:.0f} | {d['p99_us']:.0f} |\")"
      done
    done
  done
done

echo
echo "| N | dtype | measured peak RSS (MB) | predicted (MB) | predicted / measured |"
echo "|---|---|---|---|---|"
for n in 1 5 10; do
  for dtype in f32 f16 bf16; do
    runs=()
    for i in 1 2 3; do
      kb=$(/usr/bin/time -v "$bin" ensemble infer "$tmp/ref" --top-n "$n" --dtype "$dtype" --state "$tmp/state.json" 2>&1 >/dev/null \
            | awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}')
      runs+=("$kb")
    done
    kb=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p)
    "$bin" budget --profile "$tmp/configs/ref.toml" --top-n "$n" --dtype "$dtype" --json 2>/dev/null \
      | python3 -c "
import json, sys
r = json.load(sys.stdin)
pred = sum(t['ram_bytes'] for t in r['trader_terms'] if t['component'] not in ('history', 'store cache', 'trading loop'))
meas = $kb * 1024
print(f'| $n | $dtype | {meas/1e6:.2f} | {pred/1e6:.2f} | {pred/meas:.3f} |')"
  done
done
