#!/usr/bin/env python3
"""`trader train --workers auto` on this machine (issue 17): workers admitted, trials
per hour against fixed worker counts, and the governor's own CPU and RSS.

Standard library only. Each trial is one run of scripts/alloc_worker.py (it allocates
STEP_MB per step, STEPS steps of STEP_SECS, then holds HOLD_SECS): a stand-in for a
training worker whose size the governor learns. Every configuration runs TRIALS trials
in a `--ram-pool` that fits POOL_FIT of them (measured python3 RSS + STEPS x STEP_MB,
+10 %), with `--worker-rss` the honest demand. The coordinator (the `trader train`
process itself, children excluded) is sampled from /proc every 50 ms: its CPU ticks
(utime + stime) and VmHWM.

    python3 scripts/bench_governor.py BIN          # BIN: a release `trader`
"""
import json
import os
import subprocess
import sys
import tempfile
import time

STEP_MB = int(os.environ.get("STEP_MB", "20"))
STEPS = int(os.environ.get("STEPS", "4"))
STEP_SECS = float(os.environ.get("STEP_SECS", "0.25"))
HOLD_SECS = float(os.environ.get("HOLD_SECS", "1.0"))
TRIALS = int(os.environ.get("TRIALS", "16"))
POOL_FIT = int(os.environ.get("POOL_FIT", "3"))
TICK = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))
ALLOC = os.path.join(HERE, "alloc_worker.py")


def python_rss():
    out = subprocess.run([sys.executable, ALLOC, "--print-rss"], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def sample(pid):
    """(cpu ticks of the process itself, VmHWM bytes) or None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        hwm = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
        return ticks, hwm
    except (OSError, IndexError, ValueError):
        return None


def run(binary, workers, pool, demand, out):
    cmd = [binary, "train", "--exec", "--workers", workers, "--trials", str(TRIALS),
           "--ram-pool", f"{pool}B", "--worker-rss", f"{demand}B", "--out", out, "--json", "--",
           sys.executable, ALLOC, "--step-mb", str(STEP_MB), "--steps", str(STEPS),
           "--step-secs", str(STEP_SECS), "--hold-secs", str(HOLD_SECS)]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "RUST_LOG": "warn"})
    last = (0, 0)
    while proc.poll() is None:
        s = sample(proc.pid)
        if s:
            last = s
        time.sleep(0.05)
    wall = time.monotonic() - started
    summary = json.loads(proc.stdout.read())
    return {
        "workers": workers,
        "wall_s": wall,
        "done": summary["done"],
        "max_concurrent": summary["max_concurrent_workers"],
        "trials_per_hour": summary["done"] * 3600.0 / wall,
        "refused": (summary.get("governor") or {}).get("refused", {}),
        "cpu_s": last[0] / TICK,
        "hwm_mb": last[1] / 1e6,
    }


def main():
    binary = sys.argv[1]
    base = python_rss()
    peak = base + STEPS * STEP_MB * 1_000_000
    demand = int(peak * 1.1)
    pool = int(demand * (POOL_FIT + 0.5))
    cpus = os.cpu_count()
    print(f"machine: {cpus} CPUs; worker: python3 {base / 1e6:.1f} MB + {STEPS} x {STEP_MB} MB "
          f"over {STEPS * STEP_SECS + HOLD_SECS:.1f} s (peak {peak / 1e6:.1f} MB, demand {demand / 1e6:.1f} MB); "
          f"pool {pool / 1e6:.1f} MB fits {POOL_FIT}; {TRIALS} trials per run")
    rows = []
    for workers in ["1", "2", "auto", "4", "8"]:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(run(binary, workers, pool, demand, tmp))
    print("| --workers | most at once | trials | wall s | trials/h | refused | coordinator CPU s | coordinator peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['max_concurrent']} | {r['done']} | {r['wall_s']:.1f} | "
              f"{r['trials_per_hour']:.0f} | {r['refused']} | {r['cpu_s']:.2f} | {r['hwm_mb']:.1f} |")


if __name__ == "__main__":
    main()
