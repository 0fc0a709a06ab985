#!/usr/bin/env bash
# Reaction to the close (issue 15): `trader run` against a standalone
# `trader sim`, full and lean (poll every 60 s and 120 s as shipped), on the
# fixed schedule and the aligned one (the default), told nothing but the
# keys and the URLs (the trader follows the simulator's clock). Prints, per
# combination, from the run summary's JSON: close->seen p50, close->order
# p50/p99 (broker-clock ms), requests per broker hour, polls.
#
#   scripts/bench_reaction.sh            # 60x, 18 broker hours each
#   SPEED=3600 HOURS=24 START=2018-10-01T00:30:00Z scripts/bench_reaction.sh
#
# The default start, 2018-09-05T20:30Z, leads into the recorded set's
# busiest day for the shipped ensemble (2018-09-06: five rebalancing
# hours; most hours trade nothing, and close->order counts only hours with
# orders).
#
# The four runs go side by side, each against its own simulator. The
# binary: $BIN, default the release build of
#   CARGO_TARGET_DIR=/work/release-target cargo build --release --workspace
# (set BIN to another build, e.g. the debug one, to use it instead).
set -euo pipefail
cd "${REPO:-$(dirname "$0")/..}"
repo=$(pwd)
bin=${BIN:-/work/release-target/release/trader}
speed=${SPEED:-60}
hours=${HOURS:-18}
start=${START:-2018-09-05T20:30:00Z}
[ -x "$bin" ] || { echo "no binary at $bin (see the header)" >&2; exit 2; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
unset APCA_API_KEY_ID APCA_API_SECRET_KEY
printf '[[keys]]\nkey_id = "PKBENCH"\nsecret_key = "bench"\n' > "$tmp/keys.toml"
# Real seconds the trader runs: start-up (model load, backfill) + the hours.
run_secs=$(python3 -c "print(int(5 + $hours * 3600 / $speed) + 1)")

combos=()
for profile in full lean; do
  for schedule in fixed aligned; do
    name="$profile-$schedule"
    combos+=("$name")
    # The shipped profile with its paths made absolute and the schedule set.
    sed -e "s|\"\.\./|\"$repo/|" \
        -e "s|^poll_interval_secs = \(.*\)|poll_interval_secs = \1\npoll_schedule = \"$schedule\"|" \
        "configs/$profile.toml" > "$tmp/$name.toml"
    RUST_LOG=error "$bin" sim --keys "$tmp/keys.toml" --start "$start" \
      --speed "$speed" --rate-limit 1000 >"$tmp/$name.url" 2>/dev/null &
    pids+=($!)
  done
done
sleep 1
runs=()
for name in "${combos[@]}"; do
  url=$(head -1 "$tmp/$name.url")
  APCA_API_KEY_ID=PKBENCH APCA_API_SECRET_KEY=bench APCA_API_BASE_URL="$url" APCA_API_DATA_URL="$url" \
    RUST_LOG=warn "$bin" --config-dir "$repo/configs" run --profile "$tmp/$name.toml" \
      --store "$tmp/$name.sqlite" --no-metrics --json >"$tmp/$name.json" 2>"$tmp/$name.log" &
  runs+=($!)
  pids+=($!)
done
sleep "$run_secs"
for p in "${runs[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${runs[@]}"; do wait "$p" || true; done

echo "speed ${speed}x, ${hours} broker hours per run from $start, $(date -u +%FT%TZ), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-14s %8s %9s %9s %9s %9s %6s %6s\n' run decisions seen_p50 order_p50 order_p99 req/h polls warns
for name in "${combos[@]}"; do
  warns=$(grep -c WARN "$tmp/$name.log" || true)
  python3 - "$tmp/$name.json" "$name" "$warns" <<'PY'
import json, sys
path, name, warns = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    s = json.load(open(path))
except Exception as e:  # a run that printed no summary
    print(f"{name:<14} no summary ({e})"); sys.exit(0)
print(f"{name:<14} {s['decisions']:>8} {s['close_to_seen_ms_p50']:>7}ms "
      f"{s['close_to_order_ms_p50']:>7}ms {s['close_to_order_ms_p99']:>7}ms "
      f"{s['requests_per_hour']:>9.1f} {s['polls']:>6} {warns:>6}")
PY
done
if [ -n "${KEEP:-}" ]; then cp "$tmp"/*.log "$tmp"/*.json "$KEEP"/; fi
