#!/usr/bin/python3
"""Builds the torch/numpy parity fixture in crates/trader-ensemble/tests/fixtures/parity/.

    /usr/bin/python3 scripts/make_parity_fixtures.py

Needs torch and numpy (Debian's /usr/bin/python3). Deterministic: running it
twice gives byte-identical files.

Three seeded MLP actors (40-32-16-3, relu/relu/tanh, default init scaled x2)
are saved with torch.save in the three forms export_torch.py accepts and
exported with export_torch.main() (the command line users run):
  trial_0000  from a bare nn.Sequential's state_dict          score 1.5
  trial_0001  from a whole pickled nn.Sequential              score 0.9
  trial_0002  from an ElegantRL-style actor's state_dict      score 1.2
              (extra key action_std_log; normalize set)
Then states.json (5 states), expected_torch.json (the torch modules, float32),
expected_torch_bf16.json (the same in bfloat16), expected_numpy.json (written by
scripts/numpy_reference.py in its own process) and README.md with the measured
differences. Exits non-zero when torch and numpy differ by more than 1e-6
relative (|a - b| <= 1e-6 * max(|a|, |b|)) anywhere.
"""
import copy
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import export_torch  # noqa: E402

OUT = os.path.join("crates", "trader-ensemble", "tests", "fixtures", "parity")
SEED = 20240611
SYMBOLS = ["BTC/USD", "ETH/USD", "LTC/USD"]
FEATURES = ["log_return", "rsi_14", "sma_ratio_30"]
LOOKBACK = 4
HIDDEN = [32, 16]
SCALE = 2.0  # x3 saturated 10 of 45 tanh outputs (6 at exactly +-1.0); x2 saturates none
STATE_DIM = 1 + len(SYMBOLS) + LOOKBACK * len(SYMBOLS) * len(FEATURES)  # 40
NORMALIZE_0002 = {"mean": [0.0, 0.25, -0.5], "std": [0.5, 2.0, 0.5]}  # exact in float32
REL_TOL = 1e-6
MAX_INPUT_BYTES = 50_000


class ActorPPO(nn.Module):
    """ElegantRL-style actor: .net ends in a Linear, forward() adds the tanh,
    plus a (trainable) action_std_log that inference does not use."""

    def __init__(self, dims):
        super().__init__()
        layers = []
        for i, (a, b) in enumerate(zip(dims, dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)
        self.action_std_log = nn.Parameter(torch.full((1, dims[-1]), -0.5))

    def forward(self, state):
        return self.net(state).tanh()


def sequential(dims):
    layers = []
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        layers.append(nn.Linear(a, b))
        layers.append(nn.ReLU() if i < len(dims) - 2 else nn.Tanh())
    return nn.Sequential(*layers)


def scale_linears(module, factor):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear):
                m.weight.mul_(factor)
                m.bias.mul_(factor)
    return module.eval()


def make_states(gen):
    market = torch.rand(5, STATE_DIM - 4, generator=gen) * 4 - 2
    raw = torch.rand(5, 4, generator=gen) + 0.05
    portfolio = raw / raw.sum(dim=1, keepdim=True)  # cash weight + 3 weights in [0, 1]
    states = torch.cat([portfolio, market], dim=1).to(torch.float32)
    # State 2 exercises the clip: market entry j has feature j % 3.
    for j, v in [(0, 12.5), (4, -15.0), (8, 25.0), (30, -10.5), (35, 10.25)]:
        states[2, 4 + j] = v
    return states


def prepare(states, normalize, dtype=torch.float32):
    """DESIGN.md preprocessing in float32, then cast to `dtype`."""
    x = states.clone().to(torch.float32)
    port = 1 + len(SYMBOLS)
    if normalize is not None:
        feat = torch.arange(x.shape[1] - port) % len(FEATURES)
        mean = torch.tensor(normalize["mean"], dtype=torch.float32)[feat]
        std = torch.tensor(normalize["std"], dtype=torch.float32)[feat]
        x[:, port:] = (x[:, port:] - mean) / std
    return x.clamp(-10.0, 10.0).to(dtype)


def write_json(path, obj):
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=1)
        fh.write("\n")


def run_torch(modules, names, normalizes, states, dtype):
    per_member = []
    with torch.no_grad():
        for name in names:
            module = modules[name] if dtype == torch.float32 else copy.deepcopy(modules[name]).to(dtype).eval()
            y = module(prepare(states, normalizes[name], dtype)).to(torch.float32)
            assert y.dtype == torch.float32 and y.shape == (states.shape[0], len(SYMBOLS))
            per_member.append(y.numpy())
    return {"names": names,
            "outputs": [[[float(v) for v in out[i]] for out in per_member] for i in range(states.shape[0])]}


def compare(a, b):
    x = np.asarray(a["outputs"], dtype=np.float64)
    y = np.asarray(b["outputs"], dtype=np.float64)
    assert a["names"] == b["names"] and x.shape == y.shape, (a["names"], b["names"], x.shape, y.shape)
    diff = np.abs(x - y)
    denom = np.maximum(np.abs(x), np.abs(y))
    rel = np.where(diff == 0, 0.0, diff / np.where(denom == 0, 1.0, denom))
    return float(diff.max()), float(rel.max()), float(np.abs(x).min())


def main():
    os.chdir(ROOT)
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # one summation order for the float32 reference
    ens = os.path.join(OUT, "ensemble")
    inputs = os.path.join(OUT, "torch_inputs")
    for d in (ens, inputs):
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)

    dims = [STATE_DIM, *HIDDEN, len(SYMBOLS)]
    seq0 = scale_linears(sequential(dims), SCALE)
    seq1 = scale_linears(sequential(dims), SCALE)
    actor2 = scale_linears(ActorPPO(dims), SCALE)
    modules = {"trial_0000": seq0, "trial_0001": seq1, "trial_0002": actor2}

    src0 = os.path.join(inputs, "trial_0000_sequential_state_dict.pt")
    src1 = os.path.join(inputs, "trial_0001_sequential.pt")
    src2 = os.path.join(inputs, "trial_0002_elegantrl_actor.pth")
    norm2 = os.path.join(inputs, "trial_0002_normalize.json")
    torch.save(seq0.state_dict(), src0)
    torch.save(seq1, src1)
    torch.save(actor2.state_dict(), src2)
    write_json(norm2, NORMALIZE_0002)

    common = ["--symbols", ",".join(SYMBOLS), "--lookback", str(LOOKBACK), "--features", ",".join(FEATURES)]
    hp = {"fixture": "parity", "seed": SEED, "hidden": HIDDEN, "init_scale": SCALE, "trained": False}
    commands = [
        ["member", src0, "--out", os.path.join(ens, "trial_0000"), *common, "--score", "1.5",
         "--activations", "relu,relu,tanh", "--hparams", json.dumps(hp)],
        ["member", src1, "--out", os.path.join(ens, "trial_0001"), *common, "--score", "0.9",
         "--hparams", json.dumps(hp)],
        ["member", src2, "--out", os.path.join(ens, "trial_0002"), *common, "--score", "1.2",
         "--normalize", norm2, "--hparams", json.dumps(hp)],
        ["ensemble", ens, "--members", "trial_0000,trial_0001,trial_0002", "--top-n", "3",
         "--aggregate", "mean"],
    ]
    for argv in commands:
        if export_torch.main(argv) != 0:
            sys.exit(f"export_torch.py {' '.join(argv)} failed")

    gen = torch.Generator().manual_seed(SEED + 1)
    states = make_states(gen)
    states_path = os.path.join(OUT, "states.json")
    with open(states_path, "w") as fh:
        fh.write("[\n" + ",\n".join(" " + json.dumps([float(v) for v in row]) for row in states.numpy())
                 + "\n]\n")

    with open(os.path.join(ens, "ensemble_params.json")) as fh:
        names = [m["dir"] for m in sorted(json.load(fh)["members"], key=lambda m: (-m["score"], m["dir"]))]
    normalizes = {"trial_0000": None, "trial_0001": None, "trial_0002": NORMALIZE_0002}

    expected_torch = run_torch(modules, names, normalizes, states, torch.float32)
    write_json(os.path.join(OUT, "expected_torch.json"), expected_torch)

    bf16_note = None
    try:
        expected_bf16 = run_torch(modules, names, normalizes, states, torch.bfloat16)
        write_json(os.path.join(OUT, "expected_torch_bf16.json"), expected_bf16)
    except RuntimeError as e:  # bf16 matmul unsupported on this CPU build
        expected_bf16 = None
        bf16_note = f"{type(e).__name__}: {e}"
        print(f"bfloat16 skipped: {bf16_note}", file=sys.stderr)
        stale = os.path.join(OUT, "expected_torch_bf16.json")
        if os.path.exists(stale):
            os.remove(stale)

    numpy_path = os.path.join(OUT, "expected_numpy.json")
    subprocess.run([sys.executable, os.path.join("scripts", "numpy_reference.py"), ens,
                    "--states", states_path, "--out", numpy_path], check=True)
    with open(numpy_path) as fh:
        expected_numpy = json.load(fh)

    max_abs, max_rel, min_out = compare(expected_torch, expected_numpy)
    print(f"torch vs numpy (float32): max abs diff {max_abs:.3e}, max rel diff {max_rel:.3e}, "
          f"smallest |output| {min_out:.3e}")
    bf16_abs = None
    if expected_bf16 is not None:
        bf16_abs, bf16_rel, _ = compare(expected_torch, expected_bf16)
        print(f"torch bf16 vs torch float32: max abs diff {bf16_abs:.3e}, max rel diff {bf16_rel:.3e}")

    # Inputs are kept only if small (a reader can rerun the export by hand).
    for fname in sorted(os.listdir(inputs)):
        if os.path.getsize(os.path.join(inputs, fname)) >= MAX_INPUT_BYTES:
            sys.exit(f"{fname} is {os.path.getsize(os.path.join(inputs, fname))} bytes, over the fixture limit")

    write_readme(commands, names, max_abs, max_rel, min_out, bf16_abs, bf16_note)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT} ({total} bytes)")
    if max_rel > REL_TOL:
        sys.exit(f"torch and numpy differ by {max_rel:.3e} relative (> {REL_TOL})")
    return 0


def write_readme(commands, names, max_abs, max_rel, min_out, bf16_abs, bf16_note):
    def fmt(argv):
        parts = []
        for a in argv:
            parts.append("'" + a + "'" if any(c in a for c in " {}\"") else a)
        return "/usr/bin/python3 scripts/export_torch.py " + " ".join(parts)

    bf16 = (f"`expected_torch_bf16.json` | same, with the torch modules and the prepared input cast to bfloat16 "
            f"(preprocessing in float32, output cast back to float32); differs from float32 by up to "
            f"{bf16_abs:.2e} absolute |" if bf16_note is None
            else f"(no `expected_torch_bf16.json`: bfloat16 failed in torch: {bf16_note}) |")
    text = f"""# torch / numpy parity fixture

Generated by `scripts/make_parity_fixtures.py`; do not edit by hand. Regenerate
(deterministic, byte-identical output) from the repository root with:

    /usr/bin/python3 scripts/make_parity_fixtures.py

| file | what it is |
|---|---|
| `ensemble/` | ensemble directory (DESIGN.md layout) written by `scripts/export_torch.py`: `ensemble_params.json` + `trial_0000..2/` (`actor.safetensors` F32, `params.json`). 3 symbols {",".join(SYMBOLS)}, lookback {LOOKBACK}, features {",".join(FEATURES)} ({STATE_DIM} inputs), layers {STATE_DIM}-{HIDDEN[0]}-{HIDDEN[1]}-{len(SYMBOLS)} relu/relu/tanh, untrained (seeded default init scaled x{SCALE:g}). Rank order (score desc): {", ".join(names)}. |
| `ensemble/trial_0000` | from a bare `nn.Sequential`'s state_dict (`0.weight` keys), score 1.5 |
| `ensemble/trial_0001` | from a whole pickled `nn.Sequential` (`torch.save(model)`), score 0.9 |
| `ensemble/trial_0002` | from an ElegantRL-style actor's state_dict (`net.N.*` keys + `action_std_log`, skipped), score 1.2, `normalize` = mean {NORMALIZE_0002["mean"]}, std {NORMALIZE_0002["std"]} |
| `states.json` | JSON list of 5 state vectors of length {STATE_DIM}: `[cash_weight, w_1..w_3, market part lag-major, then symbol, then feature]`; all values exact float32. State 2 has market entries 12.5, -15, 25, -10.5, 10.25 (beyond the [-10, 10] clip; for trial_0002 the -15 on rsi_14 normalises to -7.625, so it shows the clip comes after normalisation). |
| `expected_torch.json` | `{{"names": [member dirs in rank order], "outputs": [per state: [per member: [3 floats]]]}}` from the torch modules themselves in float32 (preprocessing in torch: market part `(v - mean[f]) / std[f]` where `normalize` is set, then every entry clamped to [-10, 10]) |
| {bf16}
| `expected_numpy.json` | same format, written in its own process by `/usr/bin/python3 scripts/numpy_reference.py {OUT}/ensemble --states {OUT}/states.json --out {OUT}/expected_numpy.json` (numpy only: its own safetensors parser, float32 matmuls) |
| `torch_inputs/` | the torch.save files exported above (each < 50 KB) and `trial_0002_normalize.json`, so the export can be rerun by hand |

Measured when generated: torch float32 vs numpy float32, over all 5 states x 3
members x 3 outputs: max abs diff {max_abs:.3e}, max rel diff {max_rel:.3e}
(rel = |a - b| / max(|a|, |b|); smallest |output| {min_out:.3e}). The script
fails if the relative difference exceeds {REL_TOL:g}.

Rerunning the export by hand (what the script runs, from the repository root):

```
{chr(10).join(fmt(c) for c in commands)}
```
"""
    with open(os.path.join(OUT, "README.md"), "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    sys.exit(main())
