"""Backend checkpoints: after a power loss the backend comes back at its last checkpoint, whatever
mix of old and new pages the disk kept; after a process crash it keeps its newest state."""
from __future__ import annotations

import os
import random

import pytest

from pyetcd.fileutil import OSFileSystem
from pyetcd.storage import checkpoint
from pyetcd.storage.backend import Backend

PAGE = 4096


class Machine(OSFileSystem):
    """The real file system, with a boot id the test changes to say "the power went off"."""

    def __init__(self) -> None:
        self.boot = "boot-1"

    def boot_id(self) -> str:
        return self.boot


def commit_random(backend: Backend, rng: random.Random, commits: int) -> None:
    db = backend.db("key")
    for _ in range(commits):
        txn = backend.write_txn()
        for _ in range(rng.randint(1, 30)):
            key = b"k%04d" % rng.randrange(2000)
            if rng.random() < 0.3:
                txn.delete(key, db=db)
            else:
                txn.put(key, rng.randbytes(rng.randint(1, 600)), db=db)
        backend.commit()


def contents(backend: Backend) -> dict[bytes, bytes]:
    with backend.begin_read() as txn:
        return dict(txn.cursor(db=backend.db("key")))


def lose_unsynced_pages(path: str, durable: bytes, rng: random.Random) -> None:
    """What a power loss can leave: each page either as last synced or as last written."""
    current = open(path, "rb").read()
    mixed = bytearray()
    for offset in range(0, max(len(current), len(durable)), PAGE):
        old, new = durable[offset:offset + PAGE], current[offset:offset + PAGE]
        mixed += (old if old and rng.random() < 0.5 else new) or old
    with open(path, "wb") as f:
        f.write(mixed)


@pytest.mark.parametrize("seed", range(25))
def test_power_loss_returns_to_the_checkpoint(tmp_path, seed):
    rng = random.Random(seed)
    machine = Machine()
    path = str(tmp_path / "db")
    backend = Backend(path, fs=machine)
    commit_random(backend, rng, 150)
    backend.set_consistent_index(backend.write_txn(), 77, 3)
    backend.commit()
    assert backend.checkpoint() == 77
    expected = contents(backend)
    data_file = os.path.join(path, checkpoint.DATA_FILE)
    durable = open(data_file, "rb").read()
    commit_random(backend, rng, rng.randint(1, 300))  # unsynced; reuses free pages
    backend.env.close()  # the process dies with the machine

    lose_unsynced_pages(data_file, durable, rng)
    machine.boot = "boot-2"
    restored = Backend(path, fs=machine)
    assert restored.restored is not None and restored.restored.consistent_index == 77
    assert contents(restored) == expected
    with restored.begin_read() as txn:
        assert restored.consistent_index(txn) == (77, 3)
    commit_random(restored, rng, 20)  # and it goes on working
    restored.close()


def test_process_crash_keeps_the_newest_state(tmp_path):
    machine = Machine()
    path = str(tmp_path / "db")
    backend = Backend(path, fs=machine)
    commit_random(backend, random.Random(1), 50)
    expected = contents(backend)
    backend.env.close()  # SIGKILL: the page cache keeps every committed page
    reopened = Backend(path, fs=machine)
    assert reopened.restored is None
    assert contents(reopened) == expected
    reopened.close()


def test_a_damaged_checkpoint_file_is_refused(tmp_path):
    machine = Machine()
    path = str(tmp_path / "db")
    Backend(path, fs=machine).close()
    with open(os.path.join(path, checkpoint.FILE_NAME), "r+b") as f:
        f.seek(20)
        f.write(b"\xff")
    machine.boot = "boot-2"
    with pytest.raises(checkpoint.CheckpointError):
        Backend(path, fs=machine)


def test_a_checkpoint_that_finishes_after_a_newer_one_is_dropped(tmp_path):
    """sim F13: a periodic checkpoint, slowed by its fsync, finished after the one taken for a
    Raft snapshot and saved the older state; the WAL below the snapshot was already released,
    and after a power loss every start refused (backend behind the WAL's snapshot)."""
    machine = Machine()
    path = str(tmp_path / "db")
    backend = Backend(path, fs=machine)
    backend.set_consistent_index(backend.write_txn(), 30, 2)
    backend.commit()
    older = backend.begin_checkpoint()
    backend.set_consistent_index(backend.write_txn(), 38, 2)
    backend.commit()
    assert backend.begin_checkpoint()() == 38
    older()  # the slow one ends last
    backend.env.close()
    machine.boot = "boot-2"
    restored = Backend(path, fs=machine)
    assert restored.restored is not None and restored.restored.consistent_index == 38
    restored.close()
