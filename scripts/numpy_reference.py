#!/usr/bin/python3
"""Independent numpy reference for ensemble inference (no torch).

Reads an ensemble directory (DESIGN.md layout) on its own terms: parses each
member's actor.safetensors by hand (F32, F16, BF16, F64 tensors), reads
params.json, prepares each state (market part normalised per feature when
`normalize` is set, then every entry clipped to [-10, 10]) and runs the MLP with
float32 numpy matmuls. Members run in rank order: score descending, ties by
directory name (as listed in ensemble_params.json; every listed member runs).

    /usr/bin/python3 scripts/numpy_reference.py ENSEMBLE_DIR \\
        --states STATES.json --out EXPECTED.json

STATES.json is a JSON list of state vectors [cash_weight, w_1..w_S, market
part lag-major, then symbol, then feature]. EXPECTED.json is
{"names": [member dirs in rank order],
 "outputs": [per state: [per member: [S floats]]]}
(floats are the exact float32 results). Without --out the outputs are printed.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

STATE_CLIP = np.float32(10.0)
_DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "F64": ("<f8", 8), "BF16": ("<u2", 2)}


def read_safetensors(path):
    """{name: float32 array} of a safetensors file, with its layout checked."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} does not fit in {len(data)} bytes")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                     key=lambda kv: kv[1]["data_offsets"][0])
    tensors, pos = {}, 0
    for name, info in entries:
        start, end = info["data_offsets"]
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        np_dtype, size = _DTYPES[info["dtype"]]
        count = int(np.prod(info["shape"], dtype=np.int64))
        if start != pos or end - start != count * size:
            raise ValueError(f"{path}: tensor {name} offsets {start}..{end} are not contiguous / do not match "
                             f"shape {info['shape']} x {size} bytes")
        pos = end
        raw = np.frombuffer(body[start:end], dtype=np_dtype)
        if info["dtype"] == "BF16":
            arr = (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            arr = raw.astype(np.float32)
        tensors[name] = arr.reshape(info["shape"])
    if pos != len(body):
        raise ValueError(f"{path}: {len(body) - pos} bytes after the last tensor")
    return tensors


class Member:
    def __init__(self, member_dir):
        with open(os.path.join(member_dir, "params.json")) as fh:
            self.params = json.load(fh)
        p = self.params
        self.n_symbols = len(p["symbols"])
        self.n_features = len(p["features"])
        self.state_dim = 1 + self.n_symbols + p["lookback"] * self.n_symbols * self.n_features
        tensors = read_safetensors(os.path.join(member_dir, "actor.safetensors"))
        self.layers = []
        for i, spec in enumerate(p["layers"]):
            w, b = tensors[f"net.{2 * i}.weight"], tensors[f"net.{2 * i}.bias"]
            assert w.shape == (spec["out"], spec["in"]), (member_dir, i, w.shape)
            assert b.shape == (spec["out"],), (member_dir, i, b.shape)
            assert spec["activation"] in ("relu", "tanh", "none"), spec
            self.layers.append((w, b, spec["activation"]))
        assert self.layers[0][0].shape[1] == self.state_dim, member_dir
        assert self.layers[-1][0].shape[0] == self.n_symbols, member_dir
        norm = p.get("normalize")
        if norm is not None:
            self.mean = np.asarray(norm["mean"], dtype=np.float32)
            self.std = np.asarray(norm["std"], dtype=np.float32)
            assert self.mean.shape == self.std.shape == (self.n_features,), member_dir
        else:
            self.mean = self.std = None

    def prepare(self, states):
        """states: float32 [N, state_dim] -> normalised and clipped copy."""
        x = np.array(states, dtype=np.float32, copy=True)
        if self.mean is not None:
            port = 1 + self.n_symbols
            feat = np.arange(x.shape[1] - port) % self.n_features
            x[:, port:] = (x[:, port:] - self.mean[feat]) / self.std[feat]
        return np.clip(x, -STATE_CLIP, STATE_CLIP)

    def forward(self, states):
        x = self.prepare(states)
        for w, b, act in self.layers:
            x = (np.matmul(x, w.T) + b).astype(np.float32)
            if act == "relu":
                x = np.maximum(x, np.float32(0))
            elif act == "tanh":
                x = np.tanh(x)
        assert x.dtype == np.float32
        return x


def ranked_members(ens_dir):
    with open(os.path.join(ens_dir, "ensemble_params.json")) as fh:
        doc = json.load(fh)
    members = sorted(doc["members"], key=lambda m: (-float(m["score"]), m["dir"]))
    return [m["dir"] for m in members]


def run(ens_dir, states):
    """{"names": [...], "outputs": [state][member][symbol]} with python floats."""
    names = ranked_members(ens_dir)
    x = np.asarray(states, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError("states must be a list of equal-length vectors")
    per_member = []
    for name in names:
        member = Member(os.path.join(ens_dir, name))
        if x.shape[1] != member.state_dim:
            raise ValueError(f"{name}: states have {x.shape[1]} entries, the member expects {member.state_dim}")
        per_member.append(member.forward(x))
    outputs = [[[float(v) for v in out[i]] for out in per_member] for i in range(x.shape[0])]
    return {"names": names, "outputs": outputs}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ensemble_dir")
    ap.add_argument("--states", required=True, help="JSON list of state vectors")
    ap.add_argument("--out", help="write the outputs here as JSON (default: print)")
    args = ap.parse_args()
    with open(args.states) as fh:
        states = json.load(fh)
    result = run(args.ensemble_dir, states)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
            fh.write("\n")
        print(f"wrote {args.out}: {len(result['outputs'])} states x {len(result['names'])} members "
              f"({', '.join(result['names'])})")
    else:
        for i, per_state in enumerate(result["outputs"]):
            for name, out in zip(result["names"], per_state):
                print(f"state {i} {name}: " + " ".join(f"{v:+.9f}" for v in out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
