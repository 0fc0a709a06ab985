#!/usr/bin/env bash
# Two builds of `trader` side by side in one sitting (issue 14's "unchanged or
# better"): backtest throughput and peak RSS of both shipped profiles over
# H1 2018 (4,344 decided hours, models/demo), and `trader run`'s peak RSS on
# a 7-day embedded replay, ROUNDS times, alternating the binaries.
#
#   scripts/bench_before_after.sh OLD_BIN NEW_BIN [ROUNDS]
#
# Build the old one from a checkout of the old commit (touch its sources if
# it shares CARGO_TARGET_DIR with the new one). Prints markdown rows.
set -euo pipefail
cd "$(dirname "$0")/.."
old="$1"; new="$2"; rounds="${3:-3}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "| binary | what | wall s | decided h/s | peak RSS MiB |"
echo "|---|---|---|---|---|"
for round in $(seq "$rounds"); do
  for which in old new; do
    bin="$old"; [ "$which" = new ] && bin="$new"
    for p in full lean; do
      rm -rf "$tmp/out"
      "$bin" backtest --profile "$p" --from 2018-01-01T00:00:00Z --to 2018-06-30T23:00:00Z \
        --out "$tmp/out" --json >/dev/null 2>&1
      python3 - "$tmp/out/resources.json" "$which" "backtest $p" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {sys.argv[3]} | {r['seconds']:.2f} | {r['decided_hours_per_second']:.0f} | {r['peak_rss_bytes']/2**20:.1f} |")
PY
    done
    rm -f "$tmp"/run.sqlite*
    start=$(date +%s.%N)
    "$bin" run --profile lean --no-metrics --store "$tmp/run.sqlite" --from 2018-10-01T00:00:00Z \
      --until 2018-10-08T00:00:00Z --speed 100000 --json 2>/dev/null > "$tmp/run.json"
    end=$(date +%s.%N)
    python3 - "$tmp/run.json" "$which" "$start" "$end" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | run lean, 7-day replay | {float(sys.argv[4]) - float(sys.argv[3]):.2f} | {r['decisions'] + r['skipped']} decided | {r['peak_rss_bytes']/2**20:.1f} |")
PY
  done
done
