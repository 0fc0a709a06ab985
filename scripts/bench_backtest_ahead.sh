#!/usr/bin/env bash
# Backtest throughput of several `trader` binaries side by side (issue 18,
# goal 3): the reference size (10 members, lookback 24, 3 symbols x 10
# features, hidden [512, 256]; `scripts/gen_ensemble.py --seed 11`) with the
# full and lean profiles as shipped (they trade rarely: min_trade_notional
# 3000) and with min_trade_notional 10 ("trading": an order most hours, the
# worst case for hours decided ahead), and the shipped demo ensemble. H1 2018
# (4,344 decided hours), batched forward, records in memory; binaries
# alternate within each round. One markdown row per run from resources.json
# and metrics.json.
#
#   scripts/bench_backtest_ahead.sh ROUNDS BIN...
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="$1"; shift
from=2018-01-01T00:00:00Z to=2018-06-30T23:00:00Z
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 scripts/gen_ensemble.py --out "$tmp/ref" --members 10 --lookback 24 --hidden 512,256 --seed 11 >/dev/null
for p in full lean; do
  sed -e "s|^dir = .*|dir = \"$tmp/ref\"|" -e "s|^history_hours = 72|history_hours = 96|" \
    "configs/$p.toml" > "$tmp/ref-$p.toml"
  sed -e 's/^min_trade_notional = .*/min_trade_notional = 10.0/' "$tmp/ref-$p.toml" > "$tmp/ref-$p-trading.toml"
done
echo "| binary | ensemble | profile | wall s | decided h/s | orders | decided ahead | first layer us/h | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq "$rounds"); do
  for case in ref-full ref-lean ref-full-trading ref-lean-trading demo-full demo-lean; do
    case "$case" in
      demo-*) profile="${case#demo-}"; ensemble=demo ;;
      *) profile="$tmp/$case.toml"; ensemble=reference ;;
    esac
    for bin in "$@"; do
      out="$tmp/out"; rm -rf "$out"
      "$bin" backtest --profile "$profile" --from "$from" --to "$to" --out "$out" >/dev/null 2>&1
      python3 - "$out" "$(basename "$bin")" "$ensemble" "${case#*-}" <<'PY'
import json, sys
out, name, ensemble, profile = sys.argv[1:]
r = json.load(open(f"{out}/resources.json"))
m = json.load(open(f"{out}/metrics.json"))
ahead = r.get("decided_ahead_hours", "-")
print(f"| {name} | {ensemble} | {profile} | {r['seconds']:.2f} | {r['decided_hours_per_second']:.0f} | "
      f"{m['orders']} | {ahead} of {m['decisions']} | {r['projection_us_per_hour']:.0f} | "
      f"{r['peak_rss_bytes'] / 2**20:.1f} |")
PY
    done
  done
done
