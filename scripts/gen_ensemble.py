#!/usr/bin/env python3
"""Writes an ensemble directory of randomly initialised MLP actors (DESIGN.md layout).

Standard library only (no numpy, no torch), so it runs on a fresh machine.
The weights are untrained (PyTorch's default Linear init, seeded): the files
are fixtures for loading, budgeting and benchmarking, not a trading policy.

    python3 scripts/gen_ensemble.py --out models/fixture-small --members 10 \
        --lookback 12 --hidden 64,32 --seed 7

Options mirror params.json: --symbols, --features, --lookback, --hidden,
--members, --seed, --dtype (F32|F16; the file's storage dtype).
"""
import argparse
import json
import math
import os
import random
import struct

CATALOG = ["log_return", "co_return", "hl_range", "volume_z_24", "rsi_14",
           "macd_sma", "boll_b_20", "cci_20", "sma_ratio_30", "sma_ratio_60"]


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, shape, flat list of floats)."""
    fmt, size = {"F32": ("<%df", 4), "F16": ("<%de", 2)}[dtype]
    header, blobs, offset = {}, [], 0
    for name, shape, values in tensors:
        blob = struct.pack(fmt % len(values), *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)  # align the data like safetensors does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--symbols", default="BTC/USD,ETH/USD,LTC/USD")
    ap.add_argument("--features", default=",".join(CATALOG))
    ap.add_argument("--lookback", type=int, default=12)
    ap.add_argument("--hidden", default="64,32")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dtype", default="F32", choices=["F32", "F16"])
    args = ap.parse_args()

    rng = random.Random(args.seed)
    symbols = args.symbols.split(",")
    features = args.features.split(",")
    unknown = [f for f in features if f not in CATALOG]
    if unknown:
        ap.error(f"unknown features {unknown}")
    hidden = [int(h) for h in args.hidden.split(",") if h]
    dims = [1 + len(symbols) + args.lookback * len(symbols) * len(features)] + hidden + [len(symbols)]
    os.makedirs(args.out, exist_ok=True)

    members = []
    for m in range(args.members):
        name = f"trial_{m:04d}"
        score = round(rng.uniform(-1.0, 2.5), 4)
        layers, tensors = [], []
        for i, (n_in, n_out) in enumerate(zip(dims, dims[1:])):
            last = i == len(dims) - 2
            layers.append({"in": n_in, "out": n_out, "activation": "tanh" if last else "relu"})
            bound = 1.0 / math.sqrt(n_in)
            w = [rng.uniform(-bound, bound) for _ in range(n_in * n_out)]
            b = [rng.uniform(-bound, bound) for _ in range(n_out)]
            tensors.append((f"net.{2 * i}.weight", [n_out, n_in], w))
            tensors.append((f"net.{2 * i}.bias", [n_out], b))
        member_dir = os.path.join(args.out, name)
        os.makedirs(member_dir, exist_ok=True)
        write_safetensors(os.path.join(member_dir, "actor.safetensors"), tensors, args.dtype)
        params = {"format": 1, "symbols": symbols, "lookback": args.lookback, "features": features,
                  "layers": layers, "normalize": None, "score": score,
                  "hparams": {"generator": "scripts/gen_ensemble.py", "seed": args.seed,
                              "hidden": hidden, "trained": False}}
        with open(os.path.join(member_dir, "params.json"), "w") as f:
            json.dump(params, f, indent=1)
            f.write("\n")
        members.append({"dir": name, "score": score})

    members.sort(key=lambda m: (-m["score"], m["dir"]))
    with open(os.path.join(args.out, "ensemble_params.json"), "w") as f:
        json.dump({"format": 1, "top_n": args.members, "aggregate": "mean", "members": members}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
