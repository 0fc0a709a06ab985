#!/usr/bin/env bash
# The GPU check of issue 19, in one go (under 8 minutes), from a prebuilt CUDA
# `trader` (scripts/build_cuda.sh --bundle DIR): writes a markdown table.
#
#   scripts/gpu_check.sh [--dry-run] [--out FILE] [BIN]
#   scripts/gpu_check.sh --build-probe DIR     # compiles DIR/cuda_context_probe
#
# BIN: default ./bundle/trader if present, else $CUDA_TARGET_DIR/release/trader
# (/work/cuda-target). A bundle's lib/ is found through the binary's rpath.
# Needs on the GPU machine: the NVIDIA driver (libcuda.so.1, nvidia-smi), bash,
# python3 (standard library: the reference ensemble and the JSON checks), the
# repository's tracked files (configs/, data/, scripts/). No network.
#
# Rows:
#   1. device: nvidia-smi (name, driver, memory, compute capability).
#   2. parity: `trader ensemble infer` on the reference ensemble (10 members,
#      724-512-256-3, scripts/gen_ensemble.py --seed 11), CPU vs CUDA, same
#      dtype, every member's output. Tolerance (absolute, outputs are tanh in
#      [-1, 1]): f32 1e-5 (summation order of a 724-term dot product: cuBLAS vs
#      gemm; the PyTorch parity test allows 1e-5 relative), f16 1e-2, bf16 3e-2
#      (as crates/trader-ensemble/tests/ensemble/parity.rs allows against f32 / torch bf16).
#   3. VRAM per process (nvidia-smi --query-compute-apps, peak of 0.2 s
#      samples; where the container hides PIDs, the rise of memory.used over
#      the idle card instead, said so in the row) of `trader ensemble bench` and
#      of a short `trader run` (device = "cuda", a 168 h replay at speed 100000)
#      for N = 1, 5, 10 at f32 and f16, next to the VRAM terms of
#      `trader budget --device cuda --json` (weights, activations, CUDA context,
#      allocator slack): the issue asks for every prediction within 10 %.
#   4. the CUDA context alone: a 30-line C program (cuInit + the primary
#      context, as cudarc does; nothing loaded) held for 3 s.
#   5. `trader budget --measure`: its NVML reading (the "in use now" tenant)
#      against nvidia-smi's memory.used at the same moment.
#   6. the VRAM alert: `trader run` with host.toml's [alerts] vram_percent
#      lowered to 0.01 and --alert-interval-secs 1 must log one "resource alert"
#      with alert=vram.
# --dry-run (no GPU needed): runs every CPU part (the reference ensemble, CPU
# inference at each dtype, the budget's predictions, a CPU `trader run` of the
# same profiles to prove them valid) and writes the table with the GPU cells
# marked "dry run".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
START=$SECONDS
DEADLINE=${GPU_CHECK_DEADLINE_S:-450}

probe_source() {
  cat <<'EOF'
/* The CUDA context alone: what cudarc does first (cuInit, the primary
 * context of device 0), nothing else; held for argv[1] seconds. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
typedef int (*init_fn)(unsigned);
typedef int (*get_fn)(int *, int);
typedef int (*retain_fn)(void **, int);
typedef int (*set_fn)(void *);
int main(int argc, char **argv) {
  void *h = dlopen("libcuda.so.1", RTLD_NOW);
  if (!h) { fprintf(stderr, "no libcuda.so.1: %s\n", dlerror()); return 2; }
  init_fn cu_init = (init_fn)dlsym(h, "cuInit");
  get_fn cu_device_get = (get_fn)dlsym(h, "cuDeviceGet");
  retain_fn cu_retain = (retain_fn)dlsym(h, "cuDevicePrimaryCtxRetain");
  set_fn cu_set = (set_fn)dlsym(h, "cuCtxSetCurrent");
  if (!cu_init || !cu_device_get || !cu_retain || !cu_set) { fprintf(stderr, "missing symbols\n"); return 2; }
  int dev = 0, rc;
  void *ctx = 0;
  if ((rc = cu_init(0)) || (rc = cu_device_get(&dev, 0)) || (rc = cu_retain(&ctx, dev)) || (rc = cu_set(ctx))) {
    fprintf(stderr, "CUDA error %d\n", rc);
    return 1;
  }
  printf("context up\n");
  fflush(stdout);
  sleep(argc > 1 ? (unsigned)atoi(argv[1]) : 3);
  return 0;
}
EOF
}

DRY=0
OUT=""
BIN=""
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1 ;;
    --out) OUT=$2; shift ;;
    --build-probe)
      mkdir -p "$2"
      probe_source >"$2/cuda_context_probe.c"
      cc -O2 -o "$2/cuda_context_probe" "$2/cuda_context_probe.c" -ldl
      echo "$2/cuda_context_probe"
      exit 0 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) BIN=$1 ;;
  esac
  shift
done
if [ -z "$BIN" ]; then
  if [ -x bundle/trader ]; then BIN=bundle/trader; else BIN=${CUDA_TARGET_DIR:-/work/cuda-target}/release/trader; fi
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
[ -x "$BIN" ] || { echo "no binary at $BIN (scripts/build_cuda.sh builds it)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed (standard library only)" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
ROWS=$TMP/rows.md
: >"$ROWS"
row() { local out="|" c; for c in "$@"; do out+=" ${c//|//} |"; done; echo "$out" >>"$ROWS"; }
note() { echo "[gpu_check $((SECONDS - START))s] $*" >&2; }
late() { [ $((SECONDS - START)) -ge "$DEADLINE" ]; }
mib() { python3 -c "print(f'{$1 / 1048576:.0f} MiB')"; }
ratio() { python3 -c "m=$2; print(f'{$1 / m:.3f}' if m else '-')"; }
within() { python3 -c "m=$2; print('ok' if m and abs($1 / m - 1) <= 0.10 else 'OFF (>10 %)')"; }

if [ "$DRY" = 1 ]; then
  note "dry run: CPU parts only, binary $BIN"
else
  command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: no driver here (use --dry-run)" >&2; exit 1; }
fi

# -- the reference ensemble, a state, the profiles and the host file --------
python3 scripts/gen_ensemble.py --out "$TMP/ref" --members 10 --lookback 24 --hidden 512,256 --seed 11 >/dev/null
python3 -c "import random; random.seed(1); print([round(random.uniform(-1, 1), 4) for _ in range(724)])" >"$TMP/state.json"
mkdir -p "$TMP/configs"
if [ "$DRY" = 1 ]; then VRAM='"141GB"'; else VRAM='"auto"'; fi
host_file() { # $1: alert line (percent of the card)
  cat <<EOF
ram = "auto"
vram = $VRAM
[limits]
ram_percent = 90
vram_percent = 95
[alerts]
vram_percent = $1
process_rss = "100GB"
check_interval_secs = 300
EOF
}
host_file 95 >"$TMP/configs/host.toml"
host_file 0.01 >"$TMP/host_alert.toml"
profile() { # $1 N, $2 dtype, $3 device -> path
  local p=$TMP/configs/ref_$1_$2_$3.toml
  sed -e "s|^dir = .*|dir = \"$TMP/ref\"|" -e "s|^top_n = .*|top_n = $1|" \
      -e "s|^dtype = .*|dtype = \"$2\"|" -e "s|^device = .*|device = \"$3\"|" \
      -e "s|^path = .*|path = \"$TMP/ref_$1_$2_$3.sqlite\"|" configs/full.toml >"$p"
  echo "$p"
}
T=(--config-dir "$TMP/configs")
REPLAY=(--data data/coinbase_2017_2018 --from 2018-10-01T00:00:00Z --until 2018-10-08T00:00:00Z
        --speed 100000 --no-metrics)

# -- 1. device --------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  row "device" "-" "dry run: nvidia-smi not asked" "" "" ""
else
  dev=$(nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,compute_cap --format=csv,noheader | head -n 1)
  row "device" "GPU 0" "$dev" "" "" "found"
fi

# -- 2. parity --------------------------------------------------------------
infer() { # $1 device, $2 dtype -> json file
  local f=$TMP/infer_$1_$2.json
  timeout 120 "$BIN" ensemble infer "$TMP/ref" "${T[@]}" --device "$1" --dtype "$2" \
    --state "$TMP/state.json" --json >"$f" 2>"$f.log" || { tail -n 3 "$f.log" >&2; return 1; }
  echo "$f"
}
for dt in f32:1e-5 f16:1e-2 bf16:3e-2; do
  dtype=${dt%%:*} tol=${dt#*:}
  cpu=$(infer cpu "$dtype") || { row "parity CPU vs CUDA" "$dtype" "CPU infer failed" "" "" "FAILED"; continue; }
  if [ "$DRY" = 1 ]; then
    n=$(python3 -c "import json; d=json.load(open('$cpu')); print(sum(len(r) for r in d['members']))")
    row "parity CPU vs CUDA" "$dtype, 10 members" "CPU: $n outputs; CUDA: dry run" "tolerance $tol abs" "" "dry run"
    continue
  fi
  if ! gpu=$(infer cuda "$dtype"); then
    row "parity CPU vs CUDA" "$dtype" "CUDA infer failed: $(tail -n 1 "$TMP/infer_cuda_$dtype.json.log" | cut -c1-120)" "" "" "FAILED"
    continue
  fi
  worst=$(python3 -c "
import json
a, b = json.load(open('$cpu')), json.load(open('$gpu'))
assert a['names'] == b['names'], 'members differ'
print(max(abs(x - y) for ra, rb in zip(a['members'], b['members']) for x, y in zip(ra, rb)))")
  verdict=$(python3 -c "print('ok' if $worst <= $tol else 'OFF')")
  row "parity CPU vs CUDA" "$dtype, 10 members" "max abs diff $worst" "tolerance $tol abs" "" "$verdict"
done

# -- 3. VRAM per process ----------------------------------------------------
gpu_used() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -n 1; }
# Runs "$@" (log in $1; killed after 120 s), samples VRAM every 0.2 s; sets RC, PEAK_PID (MiB of its
# PID, 0 if the PID is not listed) and PEAK_RISE (memory.used over the idle card).
measure() {
  local log=$1; shift
  local idle pid v t
  idle=$(gpu_used)
  PEAK_PID=0 PEAK_RISE=0 RC=0
  "$@" >"$log" 2>&1 &
  pid=$!
  local until=$((SECONDS + 120))
  while kill -0 "$pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$until" ] || kill "$pid" 2>/dev/null || true
    v=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null \
        | awk -F', *' -v p="$pid" '$1 == p {s += $2} END {print s + 0}')
    t=$(gpu_used)
    [ "$v" -gt "$PEAK_PID" ] && PEAK_PID=$v
    [ $((t - idle)) -gt "$PEAK_RISE" ] && PEAK_RISE=$((t - idle))
    sleep 0.2
  done
  wait "$pid" || RC=$?
}
# `trader budget` exits 3 when refused: its prediction is still what is wanted.
budget_json() { "$BIN" budget --host "$TMP/configs/host.toml" --json "$@" 2>/dev/null || [ $? = 3 ]; }
predicted_vram() { # $1 profile -> bytes (every VRAM term of the trader)
  budget_json --profile "$1" \
    | python3 -c "import json,sys; print(sum(t['vram_bytes'] for t in json.load(sys.stdin)['trader_terms']))"
}
vram_row() { # $1 what, $2 setting, $3 predicted bytes, $4 log
  local measured src
  if [ "$RC" != 0 ]; then
    row "$1" "$2" "exit $RC: $(tail -n 1 "$4" | cut -c1-120)" "$(mib "$3")" "" "FAILED"
    return
  fi
  if [ "$PEAK_PID" -gt 0 ]; then measured=$PEAK_PID src="per-process"; else measured=$PEAK_RISE src="memory.used rise (PID not listed)"; fi
  local bytes=$((measured * 1048576))
  row "$1" "$2" "$measured MiB ($src)" "$(mib "$3")" "$(ratio "$3" "$bytes")" "$(within "$3" "$bytes")"
}
for n in 1 5 10; do
  for dtype in f32 f16; do
    if late; then row "VRAM" "N=$n $dtype" "skipped: past ${DEADLINE}s" "" "" "skipped"; continue; fi
    pred=$(predicted_vram "$(profile "$n" "$dtype" cuda)")
    if [ "$DRY" = 1 ]; then
      cpu_profile=$(profile "$n" "$dtype" cpu)
      rc=0
      timeout 120 "$BIN" run --profile "$cpu_profile" --host "$TMP/configs/host.toml" "${REPLAY[@]}" \
        >"$TMP/run_cpu_${n}_${dtype}.log" 2>&1 || rc=$?
      row "VRAM ensemble bench + trader run" "N=$n $dtype" "dry run (CPU trader run: exit $rc)" "$(mib "$pred")" "" "dry run"
      continue
    fi
    measure "$TMP/bench_${n}_${dtype}.log" "$BIN" ensemble bench "$TMP/ref" "${T[@]}" --device cuda \
      --top-n "$n" --dtype "$dtype" --iters 5000
    vram_row "VRAM trader ensemble bench" "N=$n $dtype" "$pred" "$TMP/bench_${n}_${dtype}.log"
    measure "$TMP/run_${n}_${dtype}.log" "$BIN" run --profile "$(profile "$n" "$dtype" cuda)" \
      --host "$TMP/configs/host.toml" "${REPLAY[@]}"
    vram_row "VRAM trader run" "N=$n $dtype" "$pred" "$TMP/run_${n}_${dtype}.log"
  done
done

# -- 4. the CUDA context alone ----------------------------------------------
ctx_pred=$(budget_json --profile "$(profile 1 f32 cuda)" \
  | python3 -c "import json,sys; print(sum(t['vram_bytes'] for t in json.load(sys.stdin)['trader_terms'] if t['component'] == 'CUDA context'))")
probe=$(dirname "$BIN")/cuda_context_probe
if [ ! -x "$probe" ] && command -v cc >/dev/null; then probe=$("$0" --build-probe "$TMP/probe" 2>/dev/null || true); fi
if [ "$DRY" = 1 ]; then
  row "CUDA context alone" "primary context, device 0" "dry run" "$(mib "$ctx_pred") (the budget's term)" "" "dry run"
elif [ -x "$probe" ]; then
  measure "$TMP/ctx.log" "$probe" 3
  vram_row "CUDA context alone" "primary context, device 0" "$ctx_pred" "$TMP/ctx.log"
else
  row "CUDA context alone" "-" "skipped: no cuda_context_probe beside the binary and no cc" "$(mib "$ctx_pred")" "" "skipped"
fi

# -- 5. trader budget --measure reads NVML ---------------------------------
if [ "$DRY" = 1 ]; then
  out=$(budget_json --profile "$(profile 1 f32 cuda)" --measure \
    | python3 -c "import json,sys; d=json.load(sys.stdin); print('; '.join(d['warnings']) or 'no warning')")
  row "budget --measure (NVML)" "-" "dry run: $out" "" "" "dry run"
else
  smi=$(gpu_used)
  nvml=$(budget_json --profile "$(profile 1 f32 cuda)" --measure \
    | python3 -c "import json,sys; d=json.load(sys.stdin); print(sum(t['vram'] * t['count'] for t in d['tenants'] if 'measured' in t['name']))")
  row "budget --measure (NVML)" "used VRAM now" "nvidia-smi $smi MiB" "NVML via trader $(mib "$nvml")" \
    "$(ratio "$nvml" $((smi * 1048576)))" "$(within "$nvml" $((smi * 1048576)))"
fi

# -- 6. the VRAM alert at a lowered line ------------------------------------
if [ "$DRY" = 1 ]; then
  row "VRAM alert" "[alerts] vram_percent = 0.01" "dry run" "" "" "dry run"
elif late; then
  row "VRAM alert" "-" "skipped: past ${DEADLINE}s" "" "" "skipped"
else
  rc=0
  timeout 120 "$BIN" --log-format json run --profile "$(profile 1 f32 cuda)" --host "$TMP/host_alert.toml" \
    --alert-interval-secs 1 "${REPLAY[@]}" >"$TMP/alert.log" 2>&1 || rc=$?
  fired=$(grep -c '"alert":"vram"' "$TMP/alert.log" || true)
  if [ "$fired" -gt 0 ]; then v=fired; else v="NOT fired"; fi
  row "VRAM alert" "[alerts] vram_percent = 0.01, check every 1 s" "$fired vram alert line(s), run exit $rc" "" "" "$v"
fi

# -- the table --------------------------------------------------------------
{
  echo "GPU check ($(date -u +%Y-%m-%dT%H:%MZ), $(basename "$BIN"), $(if [ "$DRY" = 1 ]; then echo "dry run"; else echo "GPU"; fi), $((SECONDS - START)) s)"
  echo
  echo "| check | setting | measured | predicted | predicted / measured | verdict |"
  echo "|---|---|---|---|---|---|"
  cat "$ROWS"
} >"$TMP/table.md"
if [ -n "$OUT" ]; then cp "$TMP/table.md" "$OUT"; fi
cat "$TMP/table.md"
