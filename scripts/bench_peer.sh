#!/usr/bin/env bash
# Side by side, in one sitting: the Python peer trader our users run today
# (py_trader.py, numpy and torch backends) and `trader ensemble bench`, at the
# same model size (3 symbols, 10 features, lookback 24, hidden [512, 256]),
# for the full (10 members) and lean (5 members) ensembles, one thread each.
# Reports the ensemble's decision latency (the peer's inference_only_ms_median,
# ours median_us) and peak RSS (the peer's VmHWM after loading its models and
# 120 h / 72 h of pandas history; ours VmHWM after loading the models).
#
#   PEER=/path/to/py_trader.py PYTHON=/usr/bin/python3 scripts/bench_peer.sh
# The peer needs numpy + pandas (+ torch for the torch backend); on Debian:
#   apt-get install python3-numpy python3-pandas python3-torch
set -euo pipefail
cd "$(dirname "$0")/.."
peer="${PEER:-../shared/peers/py_trader.py}"
python="${PYTHON:-/usr/bin/python3}"
cargo build --release --locked -p trader-cli >/dev/null
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/release/trader"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 scripts/gen_ensemble.py --out "$tmp/ref" --members 10 --lookback 24 --hidden 512,256 --seed 11

echo "| stack | N | history h | decision ms (median) | peak RSS MB |"
echo "|---|---|---|---|---|"
for spec in "10 120" "5 72"; do
  set -- $spec; n=$1; h=$2
  for backend in numpy torch; do
    "$python" "$peer" --backend "$backend" --symbols 3 --features 10 --lookback 24 --models "$n" \
        --history-hours "$h" --steps 100 --threads 1 2>/dev/null | sed -n 's/^RESULT //p' \
      | python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"| python+$backend ({d['params_per_model']} params) | $n | $h | {d['inference_only_ms_median']:.2f} | {d['end_VmHWM_mb']:.1f} |\")"
  done
  "$bin" ensemble bench "$tmp/ref" --top-n "$n" --threads 1 --iters 1000 --json \
    | python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"| trader f32 ({d['parameters']//$n} params) | $n | - | {d['median_us']/1e3:.2f} | {d['peak_rss_bytes']/2**20:.1f} |\")"
  "$bin" ensemble bench "$tmp/ref" --top-n "$n" --threads 1 --dtype f16 --iters 1000 --json \
    | python3 -c "import json,sys; d=json.load(sys.stdin); print(f\"| trader f16 | $n | - | {d['median_us']/1e3:.2f} | {d['peak_rss_bytes']/2**20:.1f} |\")"
done
