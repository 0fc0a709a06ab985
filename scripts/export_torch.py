#!/usr/bin/python3
"""Exports a PyTorch MLP actor as an ensemble member (DESIGN.md layout).

Needs torch and numpy (Debian: /usr/bin/python3 with python3-torch).

A member directory holds actor.safetensors (F32 tensors net.0.weight [out, in],
net.0.bias [out], net.2.weight, ...) and params.json (format, symbols, lookback,
features, layers, normalize, score, hparams). An ensemble directory holds
ensemble_params.json over several member directories.

Member: accepted actors (ACTOR is a file written by torch.save):
  * a whole pickled nn.Sequential of Linear + ReLU/Tanh (torch.save(model));
  * a whole pickled nn.Module whose `.net` is such a Sequential (ElegantRL
    style). Its forward() is run once on random inputs and compared with the
    Sequential; a forward() that adds a final tanh (ElegantRL's ActorPPO) sets
    the last activation to tanh, anything else is refused. The module's class
    must be importable (put its package on PYTHONPATH);
  * a state_dict / checkpoint: keys `net.N.weight`/`net.N.bias` (ElegantRL
    actor.pth) or `N.weight`/`N.bias` (a bare Sequential's state_dict); a dict
    with a 'state_dict' or 'model' entry is unwrapped first; a `module.` prefix
    (DataParallel) is dropped. Other keys (e.g. `action_std_log`) are skipped
    with a note. A state_dict stores no activations: --activations gives them
    (default: relu for hidden layers, tanh for the last).

    /usr/bin/python3 scripts/export_torch.py member runs/ppo/actor.pth \\
        --out models/my-ensemble/trial_0000 \\
        --symbols BTC/USD,ETH/USD,LTC/USD --lookback 4 \\
        --features log_return,rsi_14,sma_ratio_30 --score 1.91 \\
        --activations relu,relu,tanh --normalize norm.json \\
        --hparams '{"algo": "ppo", "lr": 3e-4}'

  norm.json is {"mean": [F floats], "std": [F floats]} (one per feature, std > 0);
  the trader applies it to the market part of the state, then clips every
  state entry to [-10, 10].

Ensemble: writes DIR/ensemble_params.json over member directories of DIR (by
default every subdirectory with a params.json), scores read from each member's
params.json (or given with --scores), ranked best first:

    /usr/bin/python3 scripts/export_torch.py ensemble models/my-ensemble \\
        --members trial_0000,trial_0001,trial_0002 --top-n 3 --aggregate mean

Everything is validated before anything is written (input size = 1 + S +
L*S*F, last layer = S outputs, shapes chain, all weights finite, known
features, Alpaca symbols); a problem exits with status 1 and a message naming it.
"""
import argparse
import json
import math
import os
import re
import struct
import sys

import numpy as np
import torch
from torch import nn

CATALOG = ["log_return", "co_return", "hl_range", "volume_z_24", "rsi_14",
           "macd_sma", "boll_b_20", "cci_20", "sma_ratio_30", "sma_ratio_60"]
ACTIVATIONS = ("relu", "tanh", "none")
AGGREGATES = ("mean", "median", "vote")
STATE_CLIP = 10.0
PARAMS_FILE = "params.json"
WEIGHTS_FILE = "actor.safetensors"
ENSEMBLE_FILE = "ensemble_params.json"
_SYMBOL = re.compile(r"^[A-Z0-9.]+(/[A-Z0-9.]+)?$")


class ExportError(Exception):
    """A problem with the actor or the options; the message names it."""


def note(message):
    print(f"note: {message}", file=sys.stderr)


# ---------------------------------------------------------------- reading actors

def _activation_of(module):
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.Tanh):
        return "tanh"
    if isinstance(module, nn.Identity):
        return "none"
    return None


def layers_from_sequential(seq, where="Sequential"):
    """[(weight [out,in] f32, bias [out] f32, activation)] of a Sequential of
    Linear + ReLU/Tanh (Identity and Dropout are transparent at inference)."""
    layers = []
    for idx, module in enumerate(seq):
        name = f"{where}[{idx}] ({type(module).__name__})"
        if isinstance(module, nn.Linear):
            w = module.weight.detach().cpu()
            b = module.bias.detach().cpu() if module.bias is not None else None
            if b is None:
                note(f"{name} has no bias; writing a zero bias")
                b = torch.zeros(w.shape[0], dtype=w.dtype)
            layers.append([w, b, "none"])
        elif isinstance(module, nn.Dropout) or _activation_of(module) == "none":
            continue
        elif _activation_of(module) is not None:
            if not layers:
                raise ExportError(f"{name}: an activation before the first Linear layer is not supported")
            if layers[-1][2] != "none":
                raise ExportError(f"{name}: two activations in a row after one Linear layer are not supported")
            layers[-1][2] = _activation_of(module)
        elif isinstance(module, nn.Sequential):
            raise ExportError(f"{name}: nested Sequentials are not supported; flatten the model")
        else:
            raise ExportError(f"{name}: only Linear, ReLU, Tanh, Identity and Dropout modules are supported")
    if not layers:
        raise ExportError(f"{where} has no Linear layer")
    return [tuple(layer) for layer in layers]


_KEY = re.compile(r"^(?:module\.)?(net\.)?(\d+)\.(weight|bias)$")
_IDENTITY_NORM = {"state_avg": 0.0, "state_std": 1.0, "value_avg": 0.0, "value_std": 1.0}


def layers_from_state_dict(state_dict, activations=None):
    """Linear layers of a state_dict with `net.N.*` or `N.*` keys, in N order."""
    found, skipped, prefixes = {}, [], set()
    for key, value in state_dict.items():
        m = _KEY.match(str(key))
        if not m or not torch.is_tensor(value):
            base = str(key).split(".")[-1]
            if base in _IDENTITY_NORM and torch.is_tensor(value):
                ident = _IDENTITY_NORM[base]
                if not bool(torch.all(value.float() == ident)):
                    raise ExportError(
                        f"state_dict key {key!r} holds a per-entry state/value normalisation that is not the identity; "
                        "params.json can only express a per-feature normalize (--normalize), so this actor cannot be "
                        "exported as is (fold it into the training pipeline or use per-feature normalisation)")
                note(f"skipping state_dict key {key!r} (an identity state/value normalisation)")
                continue
            skipped.append(key)
            continue
        prefixes.add(m.group(1) or "")
        found.setdefault(int(m.group(2)), {})[m.group(3)] = value.detach().cpu()
    if len(prefixes) > 1:
        raise ExportError("state_dict mixes `net.N.*` and bare `N.*` keys; cannot tell which network is the actor")
    if not found:
        keys = ", ".join(map(str, list(state_dict)[:8]))
        raise ExportError(f"state_dict has no `net.N.weight` or `N.weight` keys (keys: {keys})")
    for key in skipped:
        note(f"skipping state_dict key {key!r} (not a layer of the actor MLP)")
    layers = []
    prefix = prefixes.pop()
    for idx in sorted(found):
        entry = found[idx]
        name = f"{prefix}{idx}"
        if "weight" not in entry:
            raise ExportError(f"state_dict has {name}.bias but no {name}.weight")
        w = entry["weight"]
        if w.dim() != 2:
            raise ExportError(f"{name}.weight has shape {list(w.shape)}; only Linear layers (2-D weights) are "
                              "supported (a 1-D weight is a normalisation layer)")
        b = entry.get("bias")
        if b is None:
            note(f"{name} has no bias; writing a zero bias")
            b = torch.zeros(w.shape[0], dtype=w.dtype)
        layers.append((w, b, None))
    if activations is None:
        activations = ["relu"] * (len(layers) - 1) + ["tanh"]
    elif len(activations) != len(layers):
        raise ExportError(f"--activations has {len(activations)} entries but the state_dict has "
                          f"{len(layers)} Linear layers")
    return [(w, b, a) for (w, b, _), a in zip(layers, activations)]


def _torch_forward(layers, x):
    for w, b, act in layers:
        x = x @ w.to(x.dtype).T + b.to(x.dtype)
        if act == "relu":
            x = torch.relu(x)
        elif act == "tanh":
            x = torch.tanh(x)
    return x


def _check_wrapper_forward(module, layers):
    """Compares module.forward with its .net; returns the layers, the last
    activation possibly switched to tanh."""
    n_in = layers[0][0].shape[1]
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, n_in, generator=gen, dtype=torch.float32) * 4 - 2
    cls = type(module).__name__
    try:
        with torch.no_grad():
            was_training = module.training
            module.eval()
            y = module(x)
            module.train(was_training)
    except Exception as e:  # noqa: BLE001 - any failure just means "cannot check"
        note(f"could not run {cls}.forward() to check it against .net ({type(e).__name__}: {e}); "
             "activations are taken from .net as is")
        return layers
    if not torch.is_tensor(y):
        note(f"{cls}.forward() did not return a tensor; activations are taken from .net as is")
        return layers
    with torch.no_grad():
        plain = _torch_forward(layers, x.double()).float()
    if y.shape == plain.shape and torch.allclose(y.float(), plain, rtol=1e-4, atol=1e-5):
        return layers
    if layers[-1][2] == "none" and y.shape == plain.shape and torch.allclose(
            y.float(), torch.tanh(plain), rtol=1e-4, atol=1e-5):
        note(f"{cls}.forward() applies tanh after .net; the last layer's activation is set to tanh")
        return layers[:-1] + [(layers[-1][0], layers[-1][1], "tanh")]
    raise ExportError(
        f"{cls}.forward() does not compute .net(x) (nor tanh(.net(x))); it may normalise the state or transform the "
        "action in a way params.json cannot express. Export its state_dict with --activations if you know the "
        "network is a plain MLP")


def extract_layers(obj, activations=None):
    """(layers, kind) of a loaded actor: a Sequential, a module with .net, or a
    (wrapped) state_dict. `activations` (list) is required to match for modules
    and gives the activations of a state_dict."""
    if isinstance(obj, nn.Sequential):
        layers, kind = layers_from_sequential(obj), "sequential"
    elif isinstance(obj, nn.Module):
        net = getattr(obj, "net", None)
        if not isinstance(net, nn.Sequential):
            raise ExportError(f"{type(obj).__name__} is an nn.Module without a `.net` Sequential; export its "
                              "state_dict with --activations instead")
        extra = [k for k in obj.state_dict() if not k.startswith("net.")]
        if extra:
            note(f"ignoring {type(obj).__name__} parameters/buffers outside .net: {', '.join(extra)}")
        layers = layers_from_sequential(net, f"{type(obj).__name__}.net")
        layers, kind = _check_wrapper_forward(obj, layers), "module.net"
    elif isinstance(obj, dict):
        for wrapper in ("state_dict", "model"):
            if wrapper in obj and (isinstance(obj[wrapper], (dict, nn.Module))):
                others = [k for k in obj if k != wrapper]
                if others:
                    note(f"checkpoint: using its {wrapper!r} entry, ignoring {', '.join(map(str, others))}")
                layers, kind = extract_layers(obj[wrapper], activations)
                return layers, f"checkpoint[{wrapper}]/{kind}"
        return layers_from_state_dict(obj, activations), "state_dict"
    else:
        raise ExportError(f"cannot export a {type(obj).__name__}: expected an nn.Sequential, an nn.Module with "
                          ".net, or a state_dict")
    if activations is not None:
        have = [a for _, _, a in layers]
        if list(activations) != have:
            raise ExportError(f"the module's activations are {','.join(have)} but --activations says "
                              f"{','.join(activations)}")
    return layers, kind


def load_actor(path):
    if not os.path.isfile(path):
        raise ExportError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu")
    except (AttributeError, ModuleNotFoundError) as e:
        raise ExportError(f"{path}: torch.load failed ({e}); a pickled module's class must be importable "
                          "(add its package to PYTHONPATH), or export its state_dict instead") from e
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"{path}: torch.load failed ({type(e).__name__}: {e})") from e


# ---------------------------------------------------------------- validating

def parse_list(text, what):
    items = [t.strip() for t in text.split(",")] if text is not None else []
    if not items or any(not t for t in items):
        raise ExportError(f"{what} must be a non-empty comma-separated list (got {text!r})")
    return items


def check_spec(symbols, lookback, features):
    for s in symbols:
        if not _SYMBOL.match(s):
            raise ExportError(f"symbol {s!r} is not in Alpaca's spelling (e.g. 'BTC/USD' or 'AAPL')")
    if len(set(symbols)) != len(symbols):
        raise ExportError(f"--symbols lists a symbol twice: {symbols}")
    unknown = [f for f in features if f not in CATALOG]
    if unknown:
        raise ExportError(f"unknown features {unknown} (the catalog has: {', '.join(CATALOG)})")
    if len(set(features)) != len(features):
        raise ExportError(f"--features lists a feature twice: {features}")
    if not isinstance(lookback, int) or lookback < 1:
        raise ExportError(f"--lookback must be a positive integer (got {lookback!r})")


def check_normalize(norm, n_features, source="normalize"):
    if norm is None:
        return None
    if not isinstance(norm, dict) or set(norm) != {"mean", "std"}:
        raise ExportError(f"{source} must be an object with exactly the keys 'mean' and 'std'")
    out = {}
    for key in ("mean", "std"):
        vals = norm[key]
        if not isinstance(vals, list) or len(vals) != n_features:
            raise ExportError(f"{source}: {key!r} must be a list of {n_features} numbers (one per feature)")
        for i, v in enumerate(vals):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ExportError(f"{source}: {key}[{i}] = {v!r} is not a finite number")
            if key == "std" and not v > 0:
                raise ExportError(f"{source}: std[{i}] = {v!r} must be > 0")
            if not math.isfinite(float(np.float32(v))):
                raise ExportError(f"{source}: {key}[{i}] = {v!r} overflows float32")
        out[key] = [float(v) for v in vals]
    return out


def to_f32_layers(layers, symbols, lookback, features):
    """Validates the layers against the spec; returns [(w, b, act)] as
    contiguous float32 numpy arrays."""
    s, f = len(symbols), len(features)
    want_in = 1 + s + lookback * s * f
    out = []
    for i, (w, b, act) in enumerate(layers):
        name = f"layer {i} (net.{2 * i})"
        if act not in ACTIVATIONS:
            raise ExportError(f"{name}: activation {act!r} is not one of {', '.join(ACTIVATIONS)}")
        if not (w.is_floating_point() and b.is_floating_point()):
            raise ExportError(f"{name}: weights have dtype {w.dtype}/{b.dtype}, expected floating point")
        w32 = np.ascontiguousarray(w.detach().cpu().to(torch.float32).numpy(), dtype="<f4")
        b32 = np.ascontiguousarray(b.detach().cpu().to(torch.float32).numpy(), dtype="<f4")
        if w32.ndim != 2:
            raise ExportError(f"{name}: weight has shape {list(w32.shape)}, expected [out, in]")
        if b32.shape != (w32.shape[0],):
            raise ExportError(f"{name}: bias has shape {list(b32.shape)}, expected [{w32.shape[0]}]")
        if i == 0 and w32.shape[1] != want_in:
            raise ExportError(
                f"input size mismatch: the first layer takes {w32.shape[1]} inputs but 1 + S + L*S*F = "
                f"1 + {s} + {lookback}*{s}*{f} = {want_in} (symbols={s}, lookback={lookback}, features={f}); "
                "check --symbols, --lookback and --features")
        if i > 0 and w32.shape[1] != out[-1][0].shape[0]:
            raise ExportError(f"layers do not chain: layer {i - 1} has {out[-1][0].shape[0]} outputs but layer "
                              f"{i} takes {w32.shape[1]} inputs")
        for tname, arr, orig in ((f"net.{2 * i}.weight", w32, w), (f"net.{2 * i}.bias", b32, b)):
            bad = ~np.isfinite(arr)
            if bad.any():
                first = tuple(int(x) for x in np.argwhere(bad)[0])
                val = arr[first]
                extra = ""
                if bool(torch.isfinite(orig).all()):
                    extra = " (finite in the source, but out of float32 range)"
                raise ExportError(f"{tname} has {int(bad.sum())} non-finite value(s), the first {val} at "
                                  f"index {list(first)}{extra}")
        out.append((w32, b32, act))
    if out[-1][0].shape[0] != s:
        raise ExportError(f"the last layer has {out[-1][0].shape[0]} outputs but --symbols lists {s} symbols "
                          "(one action per symbol)")
    return out


# ---------------------------------------------------------------- writing

def write_safetensors(path, tensors):
    """tensors: list of (name, float32 numpy array); written as F32."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors:
        blob = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)))
        fh.write(text)
        for blob in blobs:
            fh.write(blob)


def _read_back(path):
    with open(path, "rb") as fh:
        data = fh.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    return {k: np.frombuffer(body[v["data_offsets"][0]:v["data_offsets"][1]], dtype="<f4").reshape(v["shape"])
            for k, v in header.items() if k != "__metadata__"}


def write_json(path, obj):
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=1)
        fh.write("\n")


def export_member(source, out_dir, symbols, lookback, features, score=None, normalize=None, hparams=None,
                  activations=None, source_name=None):
    """Exports `source` (a path for torch.load, or an already loaded actor) into
    `out_dir`. Returns the params.json dict. Raises ExportError."""
    symbols, features = list(symbols), list(features)
    check_spec(symbols, lookback, features)
    if activations is not None:
        bad = [a for a in activations if a not in ACTIVATIONS]
        if bad:
            raise ExportError(f"--activations: {bad} not in {', '.join(ACTIVATIONS)}")
    if score is not None and (isinstance(score, bool) or not math.isfinite(float(score))):
        raise ExportError(f"--score {score!r} is not a finite number")
    normalize = check_normalize(normalize, len(features))
    if hparams is None:
        hparams = {}
    if not isinstance(hparams, dict):
        raise ExportError("--hparams must be a JSON object")
    if isinstance(source, (str, os.PathLike)):
        source_name = source_name or os.path.basename(os.fspath(source))
        obj = load_actor(os.fspath(source))
    else:
        obj = source
    layers, kind = extract_layers(obj, activations)
    layers = to_f32_layers(layers, symbols, lookback, features)

    params = {
        "format": 1,
        "symbols": symbols,
        "lookback": lookback,
        "features": features,
        "layers": [{"in": int(w.shape[1]), "out": int(w.shape[0]), "activation": a} for w, _, a in layers],
        "normalize": normalize,
        "score": None if score is None else float(score),
        "hparams": dict(hparams),
    }
    params["hparams"].setdefault("export", {"tool": "scripts/export_torch.py", "input": source_name,
                                            "input_kind": kind})
    tensors = []
    for i, (w, b, _) in enumerate(layers):
        tensors += [(f"net.{2 * i}.weight", w), (f"net.{2 * i}.bias", b)]
    os.makedirs(out_dir, exist_ok=True)
    weights_path = os.path.join(out_dir, WEIGHTS_FILE)
    write_safetensors(weights_path, tensors)
    back = _read_back(weights_path)
    if set(back) != {n for n, _ in tensors} or any(back[n].tobytes() != a.tobytes() for n, a in tensors):
        raise ExportError(f"{weights_path}: read-back differs from what was written")
    write_json(os.path.join(out_dir, PARAMS_FILE), params)
    return params


def write_ensemble(ens_dir, members=None, top_n=None, aggregate="mean", scores=None):
    """Writes ens_dir/ensemble_params.json over `members` (directory names,
    default: every subdirectory with a params.json). Scores come from each
    member's params.json unless `scores` (same length) is given."""
    if not os.path.isdir(ens_dir):
        raise ExportError(f"{ens_dir}: not a directory")
    if members is None:
        members = sorted(d for d in os.listdir(ens_dir) if os.path.isfile(os.path.join(ens_dir, d, PARAMS_FILE)))
        if not members:
            raise ExportError(f"{ens_dir} has no member directories (subdirectories with a {PARAMS_FILE})")
    if len(set(members)) != len(members):
        raise ExportError(f"--members lists a directory twice: {members}")
    if scores is not None and len(scores) != len(members):
        raise ExportError(f"--scores has {len(scores)} values for {len(members)} members")
    if aggregate not in AGGREGATES:
        raise ExportError(f"--aggregate {aggregate!r} is not one of {', '.join(AGGREGATES)}")
    rows, symbols = [], None
    for i, name in enumerate(members):
        mdir = os.path.join(ens_dir, name)
        for fname in (PARAMS_FILE, WEIGHTS_FILE):
            if not os.path.isfile(os.path.join(mdir, fname)):
                raise ExportError(f"member {name}: {os.path.join(mdir, fname)} is missing")
        with open(os.path.join(mdir, PARAMS_FILE)) as fh:
            params = json.load(fh)
        score = scores[i] if scores is not None else params.get("score")
        if score is None or isinstance(score, bool) or not isinstance(score, (int, float)) \
                or not math.isfinite(score):
            shown = "missing" if score is None else f"{score!r}, not a finite number"
            raise ExportError(f"member {name}: score is {shown} (set it with --score when "
                              "exporting, or pass --scores)")
        if symbols is None:
            symbols = params.get("symbols")
        elif params.get("symbols") != symbols:
            raise ExportError(f"member {name} trades {params.get('symbols')} but {members[0]} trades {symbols}; "
                              "all members must trade the same symbols")
        rows.append({"dir": name, "score": float(score)})
    rows.sort(key=lambda m: (-m["score"], m["dir"]))
    top_n = len(rows) if top_n is None else top_n
    if not 1 <= top_n <= len(rows):
        raise ExportError(f"--top-n {top_n} must be between 1 and {len(rows)}")
    doc = {"format": 1, "top_n": top_n, "aggregate": aggregate, "members": rows}
    write_json(os.path.join(ens_dir, ENSEMBLE_FILE), doc)
    return doc


# ---------------------------------------------------------------- command line

def _load_json_arg(text, what):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ExportError(f"{what} is not valid JSON: {e}") from e


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("member", help="export one actor into a member directory")
    m.add_argument("actor", help="file written by torch.save (module, state_dict or checkpoint)")
    m.add_argument("--out", required=True, help="member directory to write (e.g. ENSEMBLE/trial_0000)")
    m.add_argument("--symbols", required=True, help="comma list, Alpaca spelling (BTC/USD,ETH/USD)")
    m.add_argument("--lookback", required=True, type=int)
    m.add_argument("--features", required=True, help=f"comma list from: {','.join(CATALOG)}")
    m.add_argument("--activations", help="comma list, one per Linear layer, of relu|tanh|none "
                                         "(state_dicts; default relu...,tanh)")
    m.add_argument("--score", type=float)
    m.add_argument("--normalize", metavar="FILE.json", help='{"mean": [F floats], "std": [F floats]}')
    m.add_argument("--hparams", metavar="JSON", help="free-form JSON object stored in params.json")
    e = sub.add_parser("ensemble", help="write ensemble_params.json over member directories")
    e.add_argument("dir")
    e.add_argument("--members", help="comma list of member directories (default: all with a params.json)")
    e.add_argument("--scores", help="comma list of scores overriding the members' params.json")
    e.add_argument("--top-n", type=int)
    e.add_argument("--aggregate", default="mean", choices=AGGREGATES)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "member":
            normalize = None
            if args.normalize:
                try:
                    with open(args.normalize) as fh:
                        normalize = json.load(fh)
                except (OSError, json.JSONDecodeError) as err:
                    raise ExportError(f"--normalize {args.normalize}: {err}") from err
            params = export_member(
                args.actor, args.out,
                symbols=parse_list(args.symbols, "--symbols"),
                lookback=args.lookback,
                features=parse_list(args.features, "--features"),
                score=args.score,
                normalize=check_normalize(normalize, len(parse_list(args.features, "--features")),
                                          f"--normalize {args.normalize}"),
                hparams=_load_json_arg(args.hparams, "--hparams") if args.hparams else None,
                activations=parse_list(args.activations, "--activations") if args.activations else None)
            dims = [params["layers"][0]["in"]] + [layer["out"] for layer in params["layers"]]
            acts = ",".join(layer["activation"] for layer in params["layers"])
            print(f"wrote {args.out}: {'-'.join(map(str, dims))} ({acts}), "
                  f"input {params['hparams']['export']['input_kind']}")
        else:
            scores = None
            if args.scores:
                try:
                    scores = [float(x) for x in parse_list(args.scores, "--scores")]
                except ValueError as err:
                    raise ExportError(f"--scores: {err}") from err
            doc = write_ensemble(args.dir, parse_list(args.members, "--members") if args.members else None,
                                 args.top_n, args.aggregate, scores)
            order = ", ".join(f"{r['dir']} ({r['score']})" for r in doc["members"])
            print(f"wrote {os.path.join(args.dir, ENSEMBLE_FILE)}: top_n {doc['top_n']}, {order}")
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
