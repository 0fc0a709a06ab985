#!/usr/bin/env bash
# Measures the runtime-base constant of the budget model (RUNTIME_BASE_RSS in
# crates/trader-budget/src/model.rs): peak RSS (VmHWM via /usr/bin/time -v) of
# the release `trader ensemble infer` on one tiny fixture member, median of 5,
# minus what the model itself predicts for that member (weights, load
# transient, activations, threads), read from `trader budget --json`.
#
#   scripts/measure_runtime_base.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p trader-cli >/dev/null
bin="${CARGO_TARGET_DIR:-target}/release/trader"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -c "print([0.1] * 364)" > "$tmp/state.json"
runs=()
for i in 1 2 3 4 5; do
  kb=$(/usr/bin/time -v "$bin" ensemble infer models/fixture-small --top-n 1 --state "$tmp/state.json" 2>&1 >/dev/null \
        | awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}')
  runs+=("$kb")
done
median_kb=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 3p)
model_bytes=$("$bin" budget --profile lean --top-n 1 --json 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(sum(t["ram_bytes"] for t in r["trader_terms"] if t["component"] in ("weights", "load transient", "activations", "threads")))')
echo "peak RSS runs (KiB): ${runs[*]}"
echo "median peak RSS: $((median_kb * 1024)) bytes"
echo "model terms for that member: ${model_bytes} bytes"
echo "runtime base = $((median_kb * 1024 - model_bytes)) bytes"
