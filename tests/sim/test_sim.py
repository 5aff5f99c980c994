"""The Raft simulation over thousands of seeds (see simcluster.py for what is checked).

Environment:
  PYETCD_SIM_SEED=1234   replay only seed 1234 (a failure prints a trace of the run)
  PYETCD_SIM_SEEDS=N     how many seeds (default 5000), PYETCD_SIM_START=S the first one
Or: python tests/sim/run.py --seed 1234 -v
"""
from __future__ import annotations

import os

import pytest

from run import Suite, run_many
from simcluster import Options, SimFailure, run_seed

SEEDS = int(os.environ.get("PYETCD_SIM_SEEDS", "5000"))
START = int(os.environ.get("PYETCD_SIM_START", "0"))
ONE_SEED = os.environ.get("PYETCD_SIM_SEED")


@pytest.mark.skipif(ONE_SEED is None, reason="set PYETCD_SIM_SEED to replay one seed")
def test_replay_seed() -> None:
    try:
        run_seed(int(ONE_SEED), Options(verbose=True))
    except SimFailure as f:
        pytest.fail(str(f), pytrace=False)


@pytest.mark.skipif(ONE_SEED is not None, reason="replaying one seed")
def test_many_seeds() -> None:
    failures = sorted(run_many(START, SEEDS, min(2, os.cpu_count() or 1), Suite()))
    if failures:
        lines = [f"{msg}\n  replay: PYETCD_SIM_SEED={seed} pytest tests/sim -s" for seed, msg in failures[:10]]
        pytest.fail(f"{len(failures)} of {SEEDS} seeds failed:\n" + "\n".join(lines), pytrace=False)
