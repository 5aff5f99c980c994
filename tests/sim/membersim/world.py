"""What the pieces of one simulated run share: the loop, the network, the trace, the seed.

Randomness comes in named streams derived from the seed (``rng_for("net")``, one per disk, one
per process...), so a change in how often one component draws does not reshuffle the others.
"""
from __future__ import annotations

import logging
import random

import lmdb
from typing import TYPE_CHECKING

from membersim.network import Network
from membersim.process import CURRENT, ProcessKilled
from membersim.recorder import Recorder
from membersim.trace import Trace, TraceLogHandler
from membersim.vloop import VirtualTimeLoop

if TYPE_CHECKING:
    from membersim.member import Stop
    from membersim.process import Process

_LMDB_OPEN = lmdb.open
DISK_DELAY = (0.0001, 0.002)      # seconds of one blocking disk call (fsync included)
SLOW_SYNC_DELAY = (0.04, 0.6)     # ... one that synced, on a slow disk (writes into the page
                                  # cache stay fast: what waits is what waits for the device)


class World:
    def __init__(self, seed: int, run_dir: str, member_flags: dict, *, verbose: bool = False) -> None:
        self.seed = seed
        self.run_dir = run_dir
        self.member_flags = member_flags
        self._disk_rng = self.rng_for("disk-delay")
        self.slow_disk: set[str] = set()  # names of processes whose disk is slow now
        self.loop = VirtualTimeLoop(self._disk_delay)
        self.loop.set_exception_handler(self._loop_exception)
        self.trace = Trace(self.loop, run_dir, verbose)
        self.network = Network(self.loop, self.rng_for("net"), self.trace)
        self.recorder = Recorder(self.trace)
        self.stops: list[Stop] = []
        self.processes: list[Process] = []  # every process of the run, for the teardown
        self.closing = False
        self._log_handler = TraceLogHandler(self.trace)
        self._log_handler.setLevel(logging.DEBUG if verbose else logging.WARNING)

    def rng_for(self, stream: str) -> random.Random:
        return random.Random(f"{self.seed}/{stream}")

    def _disk_delay(self, process, synced: bool) -> float:
        slow = synced and process is not None and process.name in self.slow_disk
        return self._disk_rng.uniform(*(SLOW_SYNC_DELAY if slow else DISK_DELAY))

    def _loop_exception(self, loop, context: dict) -> None:
        exc = context.get("exception")
        if self.closing or isinstance(exc, ProcessKilled):
            return
        process = CURRENT.get()
        if process is not None and not process.alive:
            return
        self.trace.error(context.get("message", "loop error"), exc)

    def __enter__(self) -> World:
        logger = logging.getLogger("pyetcd")
        logger.addHandler(self._log_handler)
        self._old_level = logger.level
        logger.setLevel(self._log_handler.level)
        lmdb.open = self._lmdb_open
        return self

    def __exit__(self, *exc: object) -> None:
        lmdb.open = _LMDB_OPEN
        logger = logging.getLogger("pyetcd")
        logger.removeHandler(self._log_handler)
        logger.setLevel(self._old_level)

    @staticmethod
    def _lmdb_open(*args, **kwargs) -> lmdb.Environment:
        """lmdb.open, and the environment closes when the process that opened it dies.

        A harness patch, not a seam the member lacks: in one interpreter, nobody else can do
        what the kernel does at a SIGKILL (the member may die before it even holds the
        environment, halfway through opening its backend).
        """
        env = _LMDB_OPEN(*args, **kwargs)
        process = CURRENT.get()
        if process is not None:
            process.at_kill(env.close)
        return env
