#!/usr/bin/env bash
# Live ensemble swap (issue 16), release build, no Alpaca keys (the embedded
# replay), reference size: 10 members of 3 symbols x 10 features x lookback 24,
# hidden [512, 256] (503,299 parameters, 2.01 MB at f32 each), f32, 1 thread.
#
# Two generated ensembles (gen_ensemble.py, seeds 11 and 12) go into one
# directory as a_* and b_*; ensemble_params.json ranks the a_* members best.
# Per repetition, side by side in one sitting:
#   - off:  `trader run` with `reload = "off"` (baseline peak);
#   - swap: `trader run` with `reload = "on-change"`, `min_hours_between_swaps
#     = 0`: once the store holds SWAP_AFTER decisions, ensemble_params.json is
#     rewritten atomically (temp file + rename) so that the b_* members are the
#     best 10: the run loads B beside A on a blocking thread, then swaps;
#   - mmap: the same with MALLOC_MMAP_THRESHOLD_=131072 (glibc's threshold
#     fixed at its default: a diagnosis of what the allocator keeps).
# Then one run (lat) at LAT_SPEED (one broker hour about as long as a load)
# with LAT_SWAPS swaps back and forth, LAT_GAP decisions apart, resource
# checks every second (own-RSS alerts counted from its log); and `trader
# ensemble bench` alone vs beside a loop of `trader ensemble infer` loading
# the same 10 members on the other core, REPS times.
# Peak RSS: /usr/bin/time -v (Maximum resident set size), median of REPS, next
# to `trader budget --profile P --json` (sum of trader_terms) plus, for a
# swap, the swap transient (= the weights term: the ensemble in use). Also
# each swap's load_ms and rss_before/rss_after from `trader run --json`, and
# decisions.latency_us of the decisions whose poll fell inside a load vs the
# others (a load from the log's "loading it beside" line to its "swapped"
# line, real ms, spans ms * speed / 1000 broker seconds before the swap's
# `at`). Timings are noisy on a shared 2-core VM: read them with the load.
#
#   scripts/bench_swap.sh                 # about 3.5 minutes
#   REPS=1 LAT_SWAPS=4 LAT_UNTIL=2018-10-05T00:00:00Z BENCH_ITERS=200 scripts/bench_swap.sh
#   KEEP=1 scripts/bench_swap.sh          # keeps the stores, summaries and logs
#   BIN=/path/to/trader scripts/bench_swap.sh   # that binary, no build
set -euo pipefail
cd "$(dirname "$0")/.."
speed="${SPEED:-36000}"
reps="${REPS:-3}"
swap_after="${SWAP_AFTER:-48}"
lat_speed="${LAT_SPEED:-72000}"
lat_swaps="${LAT_SWAPS:-20}"
lat_until="${LAT_UNTIL:-2018-10-15T00:00:00Z}"
lat_gap="${LAT_GAP:-12}"
from="${FROM:-2018-10-01T00:00:00Z}"
until="${UNTIL:-2018-10-08T00:00:00Z}"
if [ -n "${BIN:-}" ]; then
  bin="$BIN"
else
  cargo build --release --locked -p trader-cli >/dev/null
  target="${CARGO_TARGET_DIR:-target}"
  case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac
  bin="$target/release/trader"
fi
tmp=$(mktemp -d)
if [ -n "${KEEP:-}" ]; then echo "files kept in $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi
unset APCA_API_KEY_ID APCA_API_SECRET_KEY
helper="python3 scripts/bench_swap.py"

python3 scripts/gen_ensemble.py --out "$tmp/A" --members 10 --lookback 24 --hidden 512,256 --seed 11
python3 scripts/gen_ensemble.py --out "$tmp/B" --members 10 --lookback 24 --hidden 512,256 --seed 12
$helper merge "$tmp/A" "$tmp/B" "$tmp/ens"

mkdir -p "$tmp/configs"
cp configs/host.toml "$tmp/configs/host.toml"
for reload in off on-change; do
  sed -e "s|^dir = .*|dir = \"$tmp/ens\"|" \
      -e "s|^history_hours = .*|history_hours = 120|" \
      -e "s|^threads = .*|threads = 1\nreload = \"$reload\"\nmin_hours_between_swaps = 0|" \
      configs/full.toml > "$tmp/configs/$reload.toml"
done
"$bin" budget --profile "$tmp/configs/on-change.toml" --json > "$tmp/budget.json" 2>/dev/null

run() {  # run KIND N SPEED: one `trader run` (off: no swap; swap: one; lat: LAT_SWAPS)
  local kind=$1 n=$2 speed=$3 until=$4 profile=off
  local malloc=()
  [ "$kind" != off ] && profile=on-change
  # mmap: the same one-swap run with glibc's mmap threshold fixed at its
  # default 128 KiB (no dynamic raise after a large free): a diagnosis.
  [ "$kind" = mmap ] && malloc=(MALLOC_MMAP_THRESHOLD_=131072)
  # lat: resource checks every second, so the own-RSS alert (RSS over the
  # start's prediction + 10 %) shows in the log if the RSS stays up.
  local alerts=()
  [ "$kind" = lat ] && alerts=(--alert-interval-secs 1)
  $helper rank "$tmp/ens" a
  rm -f "$tmp/$kind$n.sqlite"*
  env "${malloc[@]}" RUST_LOG=info /usr/bin/time -v "$bin" run --profile "$tmp/configs/$profile.toml" \
    --store "$tmp/$kind$n.sqlite" --from "$from" --until "$until" --speed "$speed" \
    --metrics-port 0 "${alerts[@]}" --json >"$tmp/$kind$n.json" 2>"$tmp/$kind$n.err" &
  local pid=$!
  if [ "$kind" = swap ] || [ "$kind" = mmap ]; then
    $helper wait "$tmp/$kind$n.sqlite" "$swap_after" 120
    $helper rank "$tmp/ens" b
  elif [ "$kind" = lat ]; then
    $helper flip "$tmp/$kind$n.sqlite" "$tmp/ens" "$lat_swaps" 24 "$lat_gap"
  fi
  wait "$pid"
  results+=("$kind:$speed:$tmp/$kind$n.json:$tmp/$kind$n.err:$tmp/$kind$n.sqlite")
}

results=()
for i in $(seq 1 "$reps"); do
  run off "$i" "$speed" "$until"
  run swap "$i" "$speed" "$until"
  run mmap "$i" "$speed" "$until"
done
# Decision latency while a load runs: at lat_speed one broker hour lasts
# about as long as a load, so the decisions right after each rewrite run
# beside it; lat_swaps swaps back and forth, lat_gap decisions apart.
run lat 1 "$lat_speed" "$lat_until"
ms() { python3 -c "print(round(3600 / $1 * 1000))"; }
echo "one-swap runs: speed $speed (one broker hour = $(ms "$speed") ms real), $from .. $until, swap after $swap_after decisions, $reps repetitions each"
echo "many-swap run: speed $lat_speed (one broker hour = $(ms "$lat_speed") ms real), $from .. $lat_until, $lat_swaps swaps $lat_gap decisions apart"
echo
$helper report "$tmp/budget.json" "${results[@]}"

# Directly: `trader ensemble bench` (inference only, 10 members, f32,
# stacked, 1 thread, BENCH_ITERS decisions) alone, then beside a loop of
# `trader ensemble infer` processes that load the same 10 members over and
# over on the other core (a load at every moment: the worst case of a swap).
bench_iters="${BENCH_ITERS:-2000}"
python3 -c "import random; random.seed(1); print([round(random.uniform(-1, 1), 4) for _ in range(724)])" > "$tmp/state.json"
bench() {
  "$bin" ensemble bench "$tmp/A" --top-n 10 --dtype f32 --threads 1 --mode stacked --iters "$bench_iters" --json 2>/dev/null \
    | python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"| $1 | $bench_iters | {d['median_us']:.0f} | {d['p99_us']:.0f} |\")"
}
echo
echo "| ensemble bench | samples | p50 us | p99 us |"
echo "|---|---|---|---|"
for i in $(seq 1 "$reps"); do
  bench "alone ($i)"
  ( loads=0
    while [ ! -e "$tmp/stop-loader" ]; do
      "$bin" ensemble infer "$tmp/B" --top-n 10 --dtype f32 --state "$tmp/state.json" >/dev/null 2>&1
      loads=$((loads + 1))
    done
    echo "$loads" > "$tmp/loads" ) &
  loader=$!
  sleep 1
  bench "beside a loading loop ($i)"
  touch "$tmp/stop-loader"; wait "$loader"; rm -f "$tmp/stop-loader"
  echo "| (the loop loaded the 10 members $(cat "$tmp/loads") times meanwhile) | | | |"
done
