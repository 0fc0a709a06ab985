#!/usr/bin/env bash
# CPU used by an idle `trader run` (issue 18): the embedded replay at real
# pace (--speed 1), so the trader decides its first hour and then waits
# between polls, for SECONDS (default 30) of wall time, then SIGINT. Prints
# per binary the user and system CPU seconds and the voluntary context
# switches (/usr/bin/time -v). A trader waiting for the next hour should use
# next to nothing; a busy loop shows as ~1 CPU second per second.
# Reference ensemble (10 x [512, 256], f32, 1 thread, 120 h), the shipped
# full profile otherwise.
#
#   scripts/bench_idle.sh BIN...
#   SECONDS_IDLE=60 scripts/bench_idle.sh /path/old/trader /path/new/trader
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SECONDS_IDLE:-30}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
unset APCA_API_KEY_ID APCA_API_SECRET_KEY
. scripts/reference_profile.sh
reference_profile "$tmp"
echo "| binary | wall s | user s | system s | CPU % | voluntary context switches |"
echo "|---|---|---|---|---|---|"
for bin in "$@"; do
  rm -f "$tmp/idle.sqlite"*
  timeout -s INT "$secs" /usr/bin/time -v "$bin" run --profile "$tmp/configs/ref.toml" \
    --store "$tmp/idle.sqlite" --from 2018-10-01T00:00:00Z --until 2018-10-08T00:00:00Z \
    --speed 1 --no-metrics --json >/dev/null 2>"$tmp/time.txt" || true
  awk -v name="$(basename "$bin")" -v secs="$secs" -F': ' '
    /User time/ {u=$2} /System time/ {s=$2} /Percent of CPU/ {p=$2} /Voluntary context/ {v=$2}
    END {printf "| %s | %s | %s | %s | %s | %s |\n", name, secs, u, s, p, v}' "$tmp/time.txt"
done
