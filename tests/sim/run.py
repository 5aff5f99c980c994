"""Run the simulations over many seeds, or replay one.

Two suites: ``raft`` (pyetcd.raft alone, simcluster.py) and ``member`` (whole members —
EtcdServer, WAL, LMDB, snapshots — membersim/).

    python tests/sim/run.py --seeds 100000 --jobs 2           # Raft: seeds 0..99999 on 2 processes
    python tests/sim/run.py --seed 1234 -v                    # replay Raft seed 1234 with a trace
    python tests/sim/run.py --member --seeds 2000             # whole members
    python tests/sim/run.py --member --seed 17 -v             # replay a whole-member seed
    python tests/sim/run.py --member --without power_loss     # leave a fault kind out
    python tests/sim/run.py --member --with power_loss        # ... or run one with open findings
    python tests/sim/run.py --member --plant wal-keeps-log --first-failure   # a planted bug is caught
    make sim SEEDS=100000 MEMBER_SEEDS=2000

Every failure prints its seed and the invariant it broke; the same seed replays it exactly.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import os
import sys
import time
import traceback
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import membersim  # noqa: E402
import simcluster  # noqa: E402
from membersim.planted import PLANTS  # noqa: E402


@dataclass(frozen=True)
class Suite:
    """What to run for one seed: ``member`` picks the whole-member simulation."""
    member: bool = False
    ticks: int = simcluster.Options.fault_ticks           # Raft suite: ticks of faults per seed
    without: tuple[str, ...] = ()                          # member suite: fault kinds left out ...
    with_: tuple[str, ...] = ()                            # ... or brought back (see OPEN_FINDINGS)
    plant: str | None = None                               # member suite: a planted bug (planted.py)
    lease_clients: int = membersim.Options.lease_clients   # member suite: 0 runs the seeds of before leases
    verbose: bool = False

    @property
    def chunk(self) -> int:
        """Seeds per task handed to a worker: a whole-member seed costs what ~50 Raft seeds do."""
        return 4 if self.member else 200

    def run(self, seed: int) -> None:
        """Raises the suite's SimFailure if the seed breaks an invariant."""
        if self.member:
            faults = membersim.Faults.default().with_(*self.with_).without(*self.without)
            plant = PLANTS[self.plant]() if self.plant else contextlib.nullcontext()
            with plant:
                membersim.run_seed(seed, membersim.Options(faults=faults, lease_clients=self.lease_clients,
                                                           verbose=self.verbose))
        else:
            simcluster.run_seed(seed, simcluster.Options(fault_ticks=self.ticks, verbose=self.verbose))

    @property
    def failure(self) -> tuple[type[Exception], ...]:
        return (membersim.SimFailure, simcluster.SimFailure)


def _run_range(args: tuple[Suite, int, int]) -> list[tuple[int, str]]:
    suite, start, stop = args
    failures = []
    for seed in range(start, stop):
        try:
            suite.run(seed)
        except suite.failure as f:
            failures.append((seed, str(f)))
        except Exception:  # noqa: BLE001 - a bug of the simulation itself: report it, run the others
            failures.append((seed, f"seed={seed} harness error\n{traceback.format_exc()}"))
    return failures


def run_many(start: int, count: int, jobs: int, suite: Suite, first_failure: bool = False) -> list[tuple[int, str]]:
    """Seeds start..start+count-1, split in chunks over `jobs` processes; returns the failures
    (with ``first_failure``, those of the first chunk that had any: the rest is not run)."""
    ranges = [(suite, s, min(s + suite.chunk, start + count)) for s in range(start, start + count, suite.chunk)]
    with contextlib.ExitStack() as stack:
        if len(ranges) == 1:
            results = map(_run_range, ranges)
        else:  # (worker processes are replaced now and then: a run leaks a few MB, 19 GB in 4,800 seeds)
            pool = stack.enter_context(multiprocessing.get_context("fork").Pool(max(jobs, 1), maxtasksperchild=50))
            results = pool.imap(_run_range, ranges)  # in order: the first failure found is the first one
        failures: list[tuple[int, str]] = []
        for found in results:
            failures += found
            if found and first_failure:
                break
    return failures


def replay_command(suite: Suite, seed: int) -> str:
    flags = " --member" + "".join(f" --with {w}" for w in suite.with_) + \
        "".join(f" --without {w}" for w in suite.without) + (f" --plant {suite.plant}" if suite.plant else "") \
        + (f" --lease-clients {suite.lease_clients}" if suite.lease_clients != Suite.lease_clients else "") \
        if suite.member else ""
    return f"python tests/sim/run.py{flags} --seed {seed} -v"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--member", action="store_true", help="the whole-member simulation")
    ap.add_argument("--seeds", type=int, default=10000, help="how many seeds to run")
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--ticks", type=int, default=simcluster.Options.fault_ticks, help="Raft: ticks of faults per seed")
    ap.add_argument("--without", action="append", default=[], choices=membersim.Faults.names(),
                    help="member: leave this fault kind out (repeatable)")
    ap.add_argument("--with", dest="with_", action="append", default=[], choices=membersim.Faults.names(),
                    help="member: run this fault kind even if it has an open finding (repeatable)")
    ap.add_argument("--plant", choices=sorted(PLANTS), help="member: run with this planted bug (expect failures)")
    ap.add_argument("--first-failure", action="store_true", help="stop at the first failing seed (with --plant: "
                    "how many seeds it takes to catch the bug)")
    ap.add_argument("--lease-clients", type=int, default=Suite.lease_clients,
                    help="member: lease clients (0: the workload, and the seeds, of before leases)")
    ap.add_argument("--seed", type=int, help="replay this one seed")
    ap.add_argument("-v", "--verbose", action="store_true", help="trace the replayed seed")
    a = ap.parse_args()
    suite = Suite(member=a.member, ticks=a.ticks, without=tuple(a.without), with_=tuple(a.with_), plant=a.plant,
                  lease_clients=a.lease_clients)
    if a.seed is not None:
        try:
            dataclasses.replace(suite, verbose=a.verbose).run(a.seed)
        except suite.failure as f:
            print(f"FAIL {f}")
            if isinstance(f, membersim.SimFailure) and not a.verbose:
                print(f"trace (last lines; -v for all):\n{f.trace_tail}")
            return 1
        print(f"seed {a.seed}: ok")
        return 0
    t0 = time.monotonic()
    failures = sorted(run_many(a.start, a.seeds, a.jobs, suite, a.first_failure))
    elapsed = time.monotonic() - t0
    for seed, msg in failures:
        print(f"FAIL {msg}\n  replay: {replay_command(suite, seed)}")
    if a.first_failure and failures:
        print(f"first failure: seed {failures[0][0]}, the {failures[0][0] - a.start + 1}th seed run")
        return 1
    print(f"{a.seeds} {'whole-member' if a.member else 'Raft'} seeds, {len(failures)} failed, {elapsed:.1f} s, "
          f"{a.seeds / elapsed:.1f} seeds/s ({a.jobs} jobs)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
