"""Run the Raft simulation over many seeds, or replay one.

    python tests/sim/run.py --seeds 100000 --jobs 2     # seeds 0..99999 on 2 processes
    python tests/sim/run.py --seed 1234 -v              # replay seed 1234 with a trace
    make sim SEEDS=100000

Every failure prints its seed and the invariant it broke; the same seed replays it exactly.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from simcluster import Options, SimFailure, run_seed  # noqa: E402


def _run_range(args: tuple[int, int, int]) -> list[tuple[int, str]]:
    start, stop, ticks = args
    failures = []
    for seed in range(start, stop):
        try:
            run_seed(seed, Options(fault_ticks=ticks))
        except SimFailure as f:
            failures.append((seed, str(f)))
    return failures


def run_many(start: int, count: int, jobs: int, ticks: int) -> list[tuple[int, str]]:
    """Seeds start..start+count-1, split in chunks over `jobs` processes; returns the failures."""
    chunk = 200
    ranges = [(s, min(s + chunk, start + count), ticks) for s in range(start, start + count, chunk)]
    if jobs <= 1:
        results = map(_run_range, ranges)
        return [f for r in results for f in r]
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        return [f for r in pool.imap_unordered(_run_range, ranges) for f in r]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10000, help="how many seeds to run")
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--ticks", type=int, default=Options.fault_ticks, help="ticks of faults per seed")
    ap.add_argument("--seed", type=int, help="replay this one seed")
    ap.add_argument("-v", "--verbose", action="store_true", help="trace the replayed seed")
    a = ap.parse_args()
    if a.seed is not None:
        try:
            run_seed(a.seed, Options(fault_ticks=a.ticks, verbose=a.verbose))
        except SimFailure as f:
            print(f"FAIL {f}")
            return 1
        print(f"seed {a.seed}: ok")
        return 0
    t0 = time.monotonic()
    failures = sorted(run_many(a.start, a.seeds, a.jobs, a.ticks))
    elapsed = time.monotonic() - t0
    for seed, msg in failures:
        print(f"FAIL {msg}\n  replay: python tests/sim/run.py --seed {seed} -v")
    print(f"{a.seeds} seeds, {len(failures)} failed, {elapsed:.1f} s, {a.seeds / elapsed:.0f} seeds/s "
          f"({a.jobs} jobs)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
