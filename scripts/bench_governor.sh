#!/usr/bin/env bash
# `trader train --workers auto` on this machine (issue 17), release build:
# workers admitted, trials per hour against fixed worker counts, and the
# governor's own CPU and RSS (scripts/bench_governor.py; knobs: STEP_MB,
# STEPS, STEP_SECS, HOLD_SECS, TRIALS, POOL_FIT in the environment).
#
#   scripts/bench_governor.sh          # about 2 minutes after the build
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p trader-cli >/dev/null
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac
bin="$target/release/trader"
python3 scripts/bench_governor.py "$bin"
