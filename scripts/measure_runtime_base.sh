#!/usr/bin/env bash
# Measures the runtime-base constant of the budget model: peak RSS (VmHWM, via
# /usr/bin/time -v) of the release `trader` binary doing a full `trader budget`
# (tracing, clap, config, probes, NVML attempt, safetensors headers) with no
# model weights loaded. Median of 5 runs. Writes one line per run and the median.
#
#   scripts/measure_runtime_base.sh            # builds --release first
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p trader-cli >/dev/null
bin="${CARGO_TARGET_DIR:-target}/release/trader"
runs=()
for i in 1 2 3 4 5; do
  kb=$(/usr/bin/time -v "$bin" budget --profile lean --json 2>&1 >/dev/null \
        | awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}')
  echo "run $i: ${kb} KiB"
  runs+=("$kb")
done
median=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 3p)
echo "median peak RSS: ${median} KiB = $((median * 1024)) bytes"
