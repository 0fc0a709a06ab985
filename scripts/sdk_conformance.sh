#!/usr/bin/env bash
# Conformance of `trader sim` with Alpaca's official Python SDK (alpaca-py):
# creates (once) a virtualenv under the CI cache with a pinned alpaca-py,
# starts the simulator on a free port at 3600x, runs tests/sdk/conformance.py
# against it and stops it. Exit status: the checks' (non-zero on any failure).
#
# Usage: scripts/sdk_conformance.sh [path/to/trader]
#   default binary: ${CARGO_TARGET_DIR:-target}/debug/trader (build it first)
# Needs: python3 with venv (python3-venv on Debian/Ubuntu) and, the first
# time, PyPI (pip install alpaca-py==$ALPACA_PY).
set -euo pipefail
cd "$(dirname "$0")/.."

ALPACA_PY=0.44.0
TRADER=${1:-${CARGO_TARGET_DIR:-target}/debug/trader}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/trader-ci
VENV=$CACHE/venv
DATA=data/coinbase_2017_2018

[ -x "$TRADER" ] || { echo "sdk_conformance: no trader binary at $TRADER (cargo build first, or pass its path)" >&2; exit 2; }

if ! "$VENV/bin/python" -c "import alpaca, importlib.metadata as m; assert m.version('alpaca-py') == '$ALPACA_PY'" 2>/dev/null; then
  echo "== sdk: installing alpaca-py==$ALPACA_PY into $VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "alpaca-py==$ALPACA_PY"
fi

work=$(mktemp -d)
sim_pid=""
cleanup() {
  if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
    kill -INT "$sim_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$sim_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$sim_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

export APCA_API_KEY_ID=PKSDKCONFORMANCE
export APCA_API_SECRET_KEY="sdk-$$-$RANDOM"
# One simulated hour per real second; no per-minute quota in the way.
"$TRADER" sim --data "$DATA" --port 0 --speed 3600 --rate-limit 1000000 \
  >"$work/url" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 100); do
  [ -s "$work/url" ] && break
  kill -0 "$sim_pid" 2>/dev/null || { echo "sdk_conformance: the simulator exited:" >&2; cat "$work/sim.log" >&2; exit 1; }
  sleep 0.1
done
SIM_URL=$(head -n1 "$work/url")
[ -n "$SIM_URL" ] || { echo "sdk_conformance: the simulator printed no URL" >&2; cat "$work/sim.log" >&2; exit 1; }
echo "== sdk: alpaca-py $ALPACA_PY against $SIM_URL"

status=0
SIM_URL=$SIM_URL DATA_DIR=$DATA "$VENV/bin/python" tests/sdk/conformance.py || status=$?
if [ "$status" -ne 0 ]; then
  echo "-- simulator log (last 40 lines)" >&2
  tail -n 40 "$work/sim.log" >&2
fi
exit "$status"
