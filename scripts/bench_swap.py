#!/usr/bin/env python3
"""Helper of scripts/bench_swap.sh (standard library only).

    bench_swap.py merge A B OUT          members of A and B in one directory (a_*, b_*), A ranked first
    bench_swap.py rank OUT a|b           rewrites OUT/ensemble_params.json atomically (temp + rename)
                                         so that the a_* (or b_*) members are the best 10
    bench_swap.py wait STORE N [SECS]    waits until the store holds N decisions (read-only)
    bench_swap.py flip STORE OUT K FIRST GAP
                                         K swaps back and forth: rank b once the store holds FIRST
                                         decisions, then a, b, ... each GAP decisions after the last
                                         and once the previous swap is recorded (ensemble_adoptions)
    bench_swap.py report BUDGET.json RESULTS...
                                         the tables; each RESULT is kind:speed:summary.json:time.txt:store.sqlite
                                         (kind: off, swap or lat)
"""
import json
import math
import os
import shutil
import sqlite3
import statistics
import sys
import time


def load_members(src, prefix):
    with open(os.path.join(src, "ensemble_params.json")) as f:
        params = json.load(f)
    out = []
    for m in params["members"]:
        out.append({"dir": prefix + m["dir"], "score": m["score"], "src": os.path.join(src, m["dir"])})
    return out


def write_params(out, members, best):
    """Best group first: its scores shifted up by 10, the other's down by 10."""
    ranked = []
    for m in members:
        shift = 10.0 if m["dir"].startswith(best + "_") else -10.0
        ranked.append({"dir": m["dir"], "score": round(m["score"] + shift, 4)})
    ranked.sort(key=lambda m: (-m["score"], m["dir"]))
    doc = {"format": 1, "top_n": 10, "aggregate": "mean", "members": ranked}
    tmp = os.path.join(out, ".ensemble_params.json.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(out, "ensemble_params.json"))


def members_of(out):
    with open(os.path.join(out, "ensemble_params.json")) as f:
        return json.load(f)["members"]


def merge(a, b, out):
    os.makedirs(out, exist_ok=True)
    members = load_members(a, "a_") + load_members(b, "b_")
    for m in members:
        shutil.copytree(m["src"], os.path.join(out, m["dir"]))
    # Scores as generated (without the shift) are kept in a side file so that
    # `rank` can be called any number of times.
    with open(os.path.join(out, "..", os.path.basename(out) + ".scores.json"), "w") as f:
        json.dump([{"dir": m["dir"], "score": m["score"]} for m in members], f)
    write_params(out, members, "a")


def rank(out, best):
    with open(os.path.join(out, "..", os.path.basename(out) + ".scores.json")) as f:
        members = json.load(f)
    write_params(out, members, best)


def decisions(store):
    try:
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT count(*) FROM decisions").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def adoptions(store):
    try:
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT count(*) FROM ensemble_adoptions").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def flip(store, out, k, first, gap, secs=300):
    deadline = time.time() + secs
    target = first
    for i in range(1, k + 1):
        # adoption i is the run's start (i = 1) or swap i - 1
        while time.time() < deadline and (decisions(store) < target or adoptions(store) < i):
            time.sleep(0.005)
        if time.time() >= deadline:
            sys.exit(f"flip: gave up at swap {i}")
        rank(out, "b" if i % 2 else "a")
        target = decisions(store) + gap


def wait(store, n, secs):
    deadline = time.time() + secs
    while time.time() < deadline:
        if decisions(store) >= n:
            return
        time.sleep(0.02)
    sys.exit(f"the store {store} did not reach {n} decisions in {secs} s")


def pct(values, p):
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


def load_spans(log):
    """Real ms from each load's start to its swap, from the INFO log."""
    from datetime import datetime
    ts = lambda line: datetime.fromisoformat(line.split()[0].rstrip("Z"))
    spans, start = [], None
    with open(log) as f:
        for line in f:
            if "checking and loading it beside the one in use" in line:
                start = ts(line)
            elif "ensemble swapped between hours" in line and start is not None:
                spans.append(round((ts(line) - start).total_seconds() * 1000))
                start = None
    return spans


def kib(path):
    with open(path) as f:
        for line in f:
            if "Maximum resident set size" in line:
                return int(line.rsplit(":", 1)[1])
    raise SystemExit(f"no peak RSS in {path}")


def report(budget_path, results):
    with open(budget_path) as f:
        budget = json.load(f)
    terms = budget["trader_terms"]
    trader = sum(t["ram_bytes"] for t in terms)
    weights = sum(t["ram_bytes"] for t in terms if t["component"] == "weights")
    # The budget's swap transient (the ensemble in use + one load kept by the
    # loading thread's heap); the weights alone before the budget had it.
    transient = (budget.get("swap_transient") or {}).get("ram_bytes", weights)
    predicted = {"off": trader, "swap": trader + transient, "mmap": trader + transient, "lat": trader + transient}
    mb = lambda b: b / 1e6
    runs = {"off": [], "swap": [], "mmap": [], "lat": []}
    during = {"swap": [], "mmap": [], "lat": []}
    outside = {"swap": [], "mmap": [], "lat": []}
    off_lat = []
    for r in results:
        kind, speed, summary, timefile, store = r.split(":")
        speed = float(speed)
        with open(summary) as f:
            s = json.load(f)
        run = {"kib": kib(timefile), "s": s, "log": timefile}
        runs[kind].append(run)
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        rows = db.execute(
            "SELECT bar_t, latency_us, ensemble_version FROM decisions "
            "WHERE skipped_reason IS NULL ORDER BY bar_t").fetchall()
        db.close()
        if kind == "off":
            off_lat += [lat for _, lat, _ in rows]
            continue
        # A decision of hour t runs at its poll, t + 3600 + bar_delay (1 s)
        # on the broker's clock. The load ran from the log's "checking and
        # loading it beside the one in use" to its "ensemble swapped between
        # hours" (real time; load_ms covers the load proper only), i.e.
        # real_ms * speed / 1000 broker seconds up to the swap (`at`). A
        # decision whose poll fell in [at - that, at] (1 s of slack either
        # side for the clock's whole seconds) overlapped the load.
        spans = load_spans(timefile)
        windows = []
        for i, w in enumerate(s["ensemble_swaps"]):
            real_ms = spans[i] if i < len(spans) else w["load_ms"]
            windows.append((w["at"] - real_ms * speed / 1000 - 1, w["at"] + 1))
            w["span_ms"] = real_ms
        for t, lat, _ in rows:
            decided = t + 3600 + 1
            if any(lo <= decided <= hi for lo, hi in windows):
                during[kind].append(lat)
            else:
                outside[kind].append(lat)
        run["rows"] = rows

    print("| run | peak RSS runs (KiB) | median peak | budget predicts | measured / predicted | swaps | load_ms | rss_before -> rss_after |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("off", "swap", "mmap", "lat"):
        if not runs[kind]:
            continue
        kibs = [r["kib"] for r in runs[kind]]
        med = statistics.median(kibs) * 1024
        swaps = [w for r in runs[kind] for w in r["s"]["ensemble_swaps"]]
        load = ", ".join(str(w["load_ms"]) for w in swaps) or "-"
        rss = ", ".join(f"{mb(w['rss_before'] or 0):.1f} -> {mb(w['rss_after'] or 0):.1f}" for w in swaps) or "-"
        n_swaps = ", ".join(str(len(r["s"]["ensemble_swaps"])) for r in runs[kind])
        label = {"off": "reload off (no swap)", "swap": "one swap A -> B",
                 "mmap": "one swap, MALLOC_MMAP_THRESHOLD_=131072",
                 "lat": "swaps back and forth"}[kind]
        print(f"| {label} | {', '.join(map(str, kibs))} | {mb(med):.1f} MB | {mb(predicted[kind]):.1f} MB | "
              f"{med / predicted[kind]:.3f} | {n_swaps} | {load} | {rss} MB |")
    print()
    print(f"budget: trader terms {mb(trader):.2f} MB, of which weights {mb(weights):.2f} MB; "
          f"a swap adds the swap transient (the ensemble in use + one load on the loading thread's heap) {mb(transient):.2f} MB")
    for kind in ("off", "swap", "mmap", "lat"):
        for r in runs[kind]:
            s = r["s"]
            alerts = sum('alert="own_rss"' in line for line in open(r["log"]))
            print(f"  {kind}: own-RSS alerts {alerts}, decisions {s['decisions']}, skipped {s['skipped']}, peak_rss_bytes (own) "
                  f"{mb(s['peak_rss_bytes']):.1f} MB, swaps (after_hour, load_ms, start->swap ms) {[(w['after_hour'], w['load_ms'], w.get('span_ms')) for w in s['ensemble_swaps']]}, "
                  f"refused {s['ensemble_swaps_refused']}")
    print()
    print("| decisions | samples | p50 us | p99 us | max us |")
    print("|---|---|---|---|---|")
    for label, v in (("reload off runs: all", off_lat),
                     ("one-swap runs: during the load", during["swap"]),
                     ("one-swap runs: the others", outside["swap"]),
                     ("one-swap runs, fixed mmap threshold: during the load", during["mmap"]),
                     ("one-swap runs, fixed mmap threshold: the others", outside["mmap"]),
                     ("many-swap run: during a load", during["lat"]),
                     ("many-swap run: the others", outside["lat"])):
        if v:
            print(f"| {label} | {len(v)} | {pct(v, 50)} | {pct(v, 99)} | {max(v)} |")
        else:
            print(f"| {label} | 0 | - | - | - |")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "merge":
        merge(*args)
    elif cmd == "rank":
        rank(*args)
    elif cmd == "wait":
        wait(args[0], int(args[1]), float(args[2]) if len(args) > 2 else 120)
    elif cmd == "flip":
        flip(args[0], args[1], int(args[2]), int(args[3]), int(args[4]))
    elif cmd == "report":
        report(args[0], args[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
