#!/usr/bin/env bash
# Live decision latency at the reference size (issue 18, goal 2), release
# builds, no Alpaca keys (the embedded replay): 10 members of 3 symbols x 10
# features x lookback 24, hidden [512, 256] (2.01 MB f32 each), f32, 1 thread,
# 120 h of history, a 7-day replay (168 decisions) per run.
#
# Two binaries side by side in one sitting, alternating, REPS runs each: OLD
# (a build from before the hour was prepared ahead) and NEW. Prints per run
# the decision latency p50/p99 (features + state + inference, as `trader run
# --json` reports it), peak RSS (VmHWM), and for NEW the split (medians:
# features, state, inference, orders; decisions prepared ahead; the time
# spent preparing the next hour, after the orders).
#
#   OLD=/path/to/old/trader scripts/bench_live.sh          # NEW: this tree's release build
#   OLD=... NEW=... REPS=5 scripts/bench_live.sh
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${REPS:-3}"
if [ -z "${NEW:-}" ]; then
  cargo build --release --locked -p trader-cli >/dev/null
  target="${CARGO_TARGET_DIR:-target}"
  case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac
  NEW="$target/release/trader"
fi
: "${OLD:?set OLD to the trader binary to compare with}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
unset APCA_API_KEY_ID APCA_API_SECRET_KEY
# Each binary from a fresh copy: page-cache state changes RSS (BENCHMARKS.md).
cp "$OLD" "$tmp/old"; cp "$NEW" "$tmp/new"
. scripts/reference_profile.sh
reference_profile "$tmp"
echo "| binary | run | decisions | p50 us | p99 us | features | state | inference | orders | prepared | preparing next | peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for i in $(seq 1 "$reps"); do
  for which in old new; do
    rm -f "$tmp/$which.sqlite"*
    RUST_LOG=error /usr/bin/time -v "$tmp/$which" run --profile "$tmp/configs/ref.toml" --store "$tmp/$which.sqlite" \
      --from 2018-10-01T00:00:00Z --until 2018-10-08T00:00:00Z --speed 100000 --no-metrics --json \
      >"$tmp/$which.json" 2>"$tmp/time.txt"
    kib=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$tmp/time.txt")
    python3 - "$tmp/$which.json" "$which" "$i" "$kib" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
which, i, kib = sys.argv[2], sys.argv[3], int(sys.argv[4])
sp = s.get("decision_split")
parts = (f"{sp['features_us']} | {sp['state_us']} | {sp['inference_us']} | {sp['orders_us']} | "
         f"{sp['prepared']} of {sp['decisions']} | {sp['prepare_next_us']}") if sp else "- | - | - | - | - | -"
print(f"| {which} | {i} | {s['decisions']} | {s['decision_latency_us_p50']} | {s['decision_latency_us_p99']} | "
      f"{parts} | {kib * 1024 / 1e6:.1f} |")
PY
  done
done
