"""The fault injector's disk plans aimed at one step of the member hit that step.

A plan that names a path the member no longer uses never fires, and the simulation cannot tell:
the swap crash plan matched no rename for months (defect 3's plant went uncaught).
"""
from __future__ import annotations

import os
import random

import pytest

from membersim.disk import Disk
from membersim.faults import SWAP
from membersim.process import Process, ProcessKilled
from membersim.simfs import DiskFault, FaultKind, SimFileSystem
from pyetcd.server import snapshot
from pyetcd.server.config import ServerConfig
from pyetcd.storage.checkpoint import DATA_FILE


def test_the_swap_crash_plan_fires_at_a_received_snapshots_swap(tmp_path) -> None:
    cfg = ServerConfig({"data-dir": str(tmp_path / "m1" / "data")})
    os.makedirs(cfg.backend_path)
    stash = snapshot.stash_path(cfg.snap_dir, 9, 2)
    for path in (os.path.join(cfg.backend_path, DATA_FILE), stash):
        with open(path, "wb") as f:
            f.write(b"db")
    crashes: list[str] = []
    fs = SimFileSystem(Disk(str(tmp_path / "m1"), str(tmp_path / "keep"), [], random.Random(1)), Process("m1.1"),
                       [DiskFault("rename", 1, FaultKind.CRASH_BEFORE, SWAP)], volume_of=lambda path: "data",
                       rng=random.Random(1), crash=crashes.append, trace=lambda line: None)
    with pytest.raises(ProcessKilled):
        snapshot.swap_in(fs, stash, cfg.backend_path)
    assert crashes and os.path.exists(stash)
