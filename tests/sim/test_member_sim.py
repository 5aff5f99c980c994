"""The whole-member simulation (membersim/) over hundreds of seeds, and its replay.

Environment:
  PYETCD_SIM_SEED=17           replay only seed 17, printing its trace as it runs
  PYETCD_MEMBER_SIM_SEEDS=N    how many seeds (default 300), PYETCD_MEMBER_SIM_START=S the first
Or: python tests/sim/run.py --member --seed 17 -v
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import membersim
from run import Suite, replay_command, run_many

SEEDS = int(os.environ.get("PYETCD_MEMBER_SIM_SEEDS", "300"))
START = int(os.environ.get("PYETCD_MEMBER_SIM_START", "0"))
ONE_SEED = os.environ.get("PYETCD_SIM_SEED")
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.skipif(ONE_SEED is None, reason="set PYETCD_SIM_SEED to replay one seed")
def test_replay_member_seed() -> None:
    try:
        membersim.run_seed(int(ONE_SEED), membersim.Options(verbose=True))
    except membersim.SimFailure as f:
        pytest.fail(str(f), pytrace=False)


@pytest.mark.skipif(ONE_SEED is not None, reason="replaying one seed")
def test_many_member_seeds() -> None:
    suite = Suite(member=True)
    failures = sorted(run_many(START, SEEDS, min(2, os.cpu_count() or 1), suite))
    if failures:
        lines = [f"{msg}\n  replay: PYETCD_SIM_SEED={seed} pytest tests/sim/test_member_sim.py -s  "
                 f"(or {replay_command(suite, seed)})" for seed, msg in failures[:10]]
        pytest.fail(f"{len(failures)} of {SEEDS} whole-member seeds failed:\n" + "\n".join(lines), pytrace=False)


def _digest(seed: int, hash_seed: str) -> str:
    """The trace digest of one seed, run in a fresh interpreter with the given PYTHONHASHSEED."""
    code = ("import membersim, sys\n"
            "try:\n"
            f"    print(membersim.run_seed({seed}).digest)\n"
            "except membersim.SimFailure as f:\n"
            "    print(f.digest)\n")
    env = {**os.environ, "PYTHONHASHSEED": hash_seed,
           "PYTHONPATH": os.pathsep.join([HERE, os.path.dirname(os.path.dirname(HERE))])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(ONE_SEED is not None, reason="replaying one seed")
def test_a_seed_replays_exactly() -> None:
    """Same seed, same run — whatever the interpreter's string hashing (PYTHONHASHSEED)."""
    assert _digest(7, "1") == _digest(7, "2")
