#!/usr/bin/env bash
# Regenerates the golden backtest metrics of the shipped profiles on the smoke
# slice (tests/fixtures/golden/backtest-PROFILE.json). Run it only when a change
# is meant to change the results, and say why in the commit.
#
#   scripts/regenerate_golden.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p trader-cli >/dev/null
bin="${CARGO_TARGET_DIR:-target}/debug/trader"
for profile in full lean; do
  RUST_LOG=error "$bin" backtest --profile "$profile" --data tests/fixtures/slice --json \
    > "tests/fixtures/golden/backtest-$profile.json"
  echo "wrote tests/fixtures/golden/backtest-$profile.json"
done
