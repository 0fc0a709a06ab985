#!/usr/bin/env python3
"""A stand-in for a user's training worker under `trader train --exec`.

Allocates memory step by step, writing to every page so that the resident
set really grows, holds each step for a while, then exits 0. One trial can
be made to leak: after the usual steps it keeps allocating past the host's
`process_rss` line.

    alloc_worker.py --step-mb 16 --steps 4 --step-secs 0.15 [--hold-secs S] \
        [--leak-trial K --leak-mb X] [--log FILE] [--tag MARKER]
    alloc_worker.py --print-rss        # print this interpreter's VmRSS in bytes

With --log, appends one line when the trial starts and one when it ends,
each a single O_APPEND write (atomic for lines this short):

    start TRIAL WORKER PID MONOTONIC_NS
    end TRIAL WORKER PID MONOTONIC_NS PEAK_RSS_BYTES

TRIAL and WORKER come from TRADER_TRIAL and TRADER_WORKER_ID (-1 when
unset). --tag is not used: it marks the process's command line so that a
test can find its own workers in /proc.

Standard library only.
"""

import argparse
import os
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1_000_000


def status_bytes(field):
    """VmRSS or VmHWM of this process, bytes."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def log_line(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (text + "\n").encode("ascii"))
    finally:
        os.close(fd)


def allocate(size):
    """`size` bytes with every page written (resident, not just reserved)."""
    block = bytearray(size)
    block[::PAGE] = b"\x01" * len(range(0, size, PAGE))
    return block


def env_int(name):
    try:
        return int(os.environ.get(name, "-1"))
    except ValueError:
        return -1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--step-mb", type=float, default=16.0, help="MB (1e6 bytes) per step")
    p.add_argument("--steps", type=int, default=4, help="steps of every trial")
    p.add_argument("--step-secs", type=float, default=0.15, help="hold of each step, s")
    p.add_argument("--hold-secs", type=float, default=0.0, help="extra hold at the peak, s")
    p.add_argument("--leak-trial", type=int, default=None, help="this trial leaks")
    p.add_argument("--leak-mb", type=float, default=0.0, help="MB the leaking trial adds")
    p.add_argument("--log", default=None, help="append start/end lines to this file")
    p.add_argument("--tag", default=None, help="a marker for the command line (unused)")
    p.add_argument("--print-rss", action="store_true", help="print VmRSS in bytes and exit")
    a = p.parse_args()

    if a.print_rss:
        print(status_bytes("VmRSS"))
        return 0

    trial = env_int("TRADER_TRIAL")
    worker = env_int("TRADER_WORKER_ID")
    pid = os.getpid()
    if a.log:
        log_line(a.log, f"start {trial} {worker} {pid} {time.monotonic_ns()}")

    step = int(a.step_mb * MB)
    held = []
    for _ in range(a.steps):
        held.append(allocate(step))
        time.sleep(a.step_secs)
    if a.leak_trial is not None and trial == a.leak_trial:
        leaked = 0
        target = int(a.leak_mb * MB)
        while leaked < target:
            chunk = min(step, target - leaked)
            held.append(allocate(chunk))
            leaked += chunk
            time.sleep(a.step_secs)
    time.sleep(a.hold_secs)

    if a.log:
        peak = status_bytes("VmHWM")
        log_line(a.log, f"end {trial} {worker} {pid} {time.monotonic_ns()} {peak}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
