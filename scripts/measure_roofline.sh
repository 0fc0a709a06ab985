#!/usr/bin/env bash
# The machine limits the backtest roofline in BENCHMARKS.md is drawn against,
# on ONE core: read bandwidth of a float array of 1, 5, 21 and 268 MB (L2/L3
# resident down to DRAM; AVX2 loads, 8 accumulators, best of many passes) and
# the FMA peak (10 independent AVX2 FMA chains). Needs gcc and an AVX2/FMA CPU.
#
#   scripts/measure_roofline.sh
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
gcc -O3 -march=native -o "$tmp/roofline" roofline.c
taskset -c 0 "$tmp/roofline" 2>/dev/null || "$tmp/roofline"
