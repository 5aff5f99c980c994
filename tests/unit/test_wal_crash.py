"""Nothing acknowledged is lost: a writer process is SIGKILLed at a random moment, the WAL reopened.

Run as a script, this file is the writer: it appends batches with sync=True to the WAL in argv[1]
and prints the highest index of each batch once save() has returned.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import threading

from pyetcd.proto.raftpb import raft_pb2
from pyetcd.wal import WAL

SEGMENT_SIZE = 4096  # small, so that kills also land around segment cuts
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def entry_data(index: int) -> bytes:
    return b"entry-%d;" % index * (index % 13 + 1)


def writer(dirpath: str, seed: int) -> None:
    rng = random.Random(seed)
    with WAL.open(dirpath, segment_size=SEGMENT_SIZE) as wal:
        entries = wal.read_all()[2]
        next_index = entries[-1].index + 1 if entries else 1
        while True:
            batch = [raft_pb2.Entry(term=1, index=i, data=entry_data(i))
                     for i in range(next_index, next_index + rng.randint(1, 20))]
            wal.save(raft_pb2.HardState(term=1, commit=next_index - 1), batch)
            next_index = batch[-1].index + 1
            print(batch[-1].index, flush=True)


def run_and_kill(dirpath: str, seed: int, acks_wanted: int) -> int:
    """Start a writer, SIGKILL it after acks_wanted acknowledgements; the highest index acknowledged."""
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), dirpath, str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": REPO_ROOT})
    watchdog = threading.Timer(60, proc.kill)  # never hang the suite, whatever the writer does
    watchdog.start()
    acked = 0
    try:
        for _ in range(acks_wanted):
            line = proc.stdout.readline()
            assert line, f"writer died: {proc.stderr.read().decode()}"
            acked = int(line)
        proc.kill()
        proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return acked


def test_acknowledged_entries_survive_sigkill(tmp_path):
    dirpath = str(tmp_path / "wal")
    WAL.create(dirpath, b"crash-test", segment_size=SEGMENT_SIZE).close()
    rng = random.Random(20240601)
    acked = 0
    for round_ in range(8):
        acked = max(acked, run_and_kill(dirpath, seed=round_, acks_wanted=rng.randint(1, 150)))
        with WAL.open(dirpath, segment_size=SEGMENT_SIZE) as wal:
            meta, state, entries, snap = wal.read_all()
        assert meta == b"crash-test" and snap is None
        assert [e.index for e in entries] == list(range(1, len(entries) + 1))
        assert len(entries) >= acked, f"round {round_}: acknowledged {acked}, recovered {len(entries)}"
        assert all(e.data == entry_data(e.index) for e in entries)
        assert state.commit < len(entries)
        acked = len(entries)  # recovered but unacknowledged entries are in the log now; the next writer goes on


if __name__ == "__main__":
    writer(sys.argv[1], int(sys.argv[2]))
