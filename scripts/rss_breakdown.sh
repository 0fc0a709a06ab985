#!/usr/bin/env bash
# Where `trader run`'s resident memory goes (issue 18, goal 1), release build,
# reference size (10 members, [512, 256], lookback 24, f32, 1 thread, 120 h):
# a 7-day replay through the embedded simulator, paced so that it lasts about
# 20 s; /proc/PID/smaps is read every 0.2 s and the sample with the largest
# RSS is split by mapping: the binary's own pages (text, data), shared
# libraries, [heap] (the main arena), other anonymous mappings (thread arenas,
# candle's weight buffers above the mmap threshold, thread stacks), and file
# mappings (SQLite's -shm). Prints each group's RSS in MB and the threads.
#
#   scripts/rss_breakdown.sh                  # this tree's release build
#   BIN=/path/to/trader scripts/rss_breakdown.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked -p trader-cli >/dev/null
  target="${CARGO_TARGET_DIR:-target}"
  case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac
  BIN="$target/release/trader"
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
unset APCA_API_KEY_ID APCA_API_SECRET_KEY
cp "$BIN" "$tmp/trader"
. scripts/reference_profile.sh
reference_profile "$tmp"
RUST_LOG=error "$tmp/trader" run --profile "$tmp/configs/ref.toml" --store "$tmp/ref.sqlite" \
  --from 2018-10-01T00:00:00Z --until 2018-10-08T00:00:00Z --speed 30000 --no-metrics --json \
  >"$tmp/out.json" 2>/dev/null &
pid=$!
best=0
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  if [ "${rss:-0}" -gt "$best" ] && cp "/proc/$pid/smaps" "$tmp/smaps.new" 2>/dev/null; then
    best=$rss; mv "$tmp/smaps.new" "$tmp/smaps"
    ls "/proc/$pid/task" 2>/dev/null | wc -l > "$tmp/threads"
    cat /proc/$pid/task/*/comm 2>/dev/null | sort | uniq -c | tr '\n' ';' > "$tmp/names"
  fi
  sleep 0.2
done
wait "$pid" || true
python3 - "$tmp/smaps" "$tmp/trader" "$(cat "$tmp/threads")" "$(cat "$tmp/names")" "$tmp/out.json" <<'PY'
import json, re, sys
smaps, binary, threads, names, out = sys.argv[1:6]
groups, head = {}, None
for line in open(smaps):
    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
        parts = line.split()
        path = parts[5] if len(parts) > 5 else ""
        perms = parts[1]
        if path.endswith("/trader"):
            head = "binary text" if "x" in perms else "binary data"
        elif path == "[heap]":
            head = "[heap] (main arena)"
        elif path.startswith("[stack"):
            head = "main stack"
        elif path.startswith("/") and ".so" in path:
            head = "shared libraries"
        elif path.startswith("/"):
            head = "other files (" + path.rsplit("/", 1)[-1] + ")"
        elif path.startswith("["):
            head = "kernel " + path
        else:
            head = "anonymous (arenas, weights, stacks)"
    elif line.startswith("Rss:") and head:
        groups[head] = groups.get(head, 0) + int(line.split()[1])
total = sum(groups.values())
s = json.load(open(out))
print(f"peak sample: {total / 1024:.1f} MiB RSS ({total * 1024 / 1e6:.1f} MB), {threads} threads: {names}")
print(f"run: {s['decisions']} decisions, summary peak {s['peak_rss_bytes'] / 1e6:.1f} MB")
print("| mapping | RSS MB |\n|---|---|")
for k, v in sorted(groups.items(), key=lambda kv: -kv[1]):
    print(f"| {k} | {v * 1024 / 1e6:.2f} |")
PY
