"""Planted bugs: defects of issue 6 put back into the member, and watch defects one could make,
to show the simulation catches them.

Each plant is a context manager that patches the member code for the duration of a run,
undoing one fix the way the defect was before it:

  snapshot-before-judgement  (defect 1) a received snapshot Raft refused (stale: from a deposed
                             leader, or older than what the member holds) is swapped in anyway,
                             while Raft's applied index stays ahead
  read-any-answer            (defect 2) a ReadIndex round takes any answer that arrives, not
                             only one carrying its own context (a delayed answer to an earlier
                             round resolves a later one)
  wal-keeps-log              (defect 3) the WAL marker of a received snapshot keeps the entries
                             written before it above its index (an old leader's uncommitted
                             tail comes back at restart)
  snapshot-says-raft-index   (defect 5) the snapshot message carries the index Raft chose, not
                             the copy's own (newer) one, and the follower takes the copy without
                             checking: its backend is ahead of where Raft restores to
  conf-change-over-snapshot  (defect 7) conf changes of a Ready in flight while a snapshot was
                             accepted are applied to Raft on top of the snapshot's configuration
  watch-restore-keeps-synced a database install from the leader leaves synced watchers synced
                             (what the new database brought is never sent to them)
  watch-full-skips-one       a synced watcher whose stream is full falls behind one revision past
                             the first one it was not sent
  watch-prev-kv-is-current   prev_kv is the key's value now, not the one just before the event

    python tests/sim/run.py --member --plant read-any-answer --seeds 200   # expect failures

Plants patch private member code: when the member changes, a plant may need to follow.
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator

from pyetcd.server import snapshot
from pyetcd.server.etcdserver import EtcdServer
from pyetcd.server.read_index import ReadIndex
from pyetcd.storage.backend import Backend
from pyetcd.storage.mvcc import ReadTxn
from pyetcd.storage.watchable_store import WatchableStore
from pyetcd.wal import WAL


@contextlib.contextmanager
def _patched(owner: type, name: str, make: Callable[[Callable], Callable]) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, make(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


def snapshot_before_judgement() -> contextlib.AbstractContextManager:
    def make(original):
        async def on_snapshot(self: EtcdServer, from_id: int, data: bytes, path: str) -> None:
            await original(self, from_id, data, path)
            if os.path.exists(path):  # Raft did not take it (it would have been stashed): swap it in anyway
                self.backend.close()
                snapshot.swap_in(self.fs, path, self.cfg.backend_path)
                self._use_backend(Backend(self.cfg.backend_path, fs=self.fs))
        return on_snapshot
    return _patched(EtcdServer, "_on_snapshot", make)


def read_any_answer() -> contextlib.AbstractContextManager:
    def make(original):
        def on_read_states(self: ReadIndex, states) -> None:
            for state in states:
                if self._answer is not None and not self._answer.done():
                    self._answer.set_result(state.index)
        return on_read_states
    return _patched(ReadIndex, "on_read_states", make)


def wal_keeps_log() -> contextlib.AbstractContextManager:
    def make(original):
        def save_snapshot(self: WAL, index: int, term: int, *, discard_log: bool = False) -> None:
            original(self, index, term, discard_log=False)
        return save_snapshot
    return _patched(WAL, "save_snapshot", make)


def snapshot_says_raft_index() -> contextlib.AbstractContextManager:
    def make_copy(original):
        async def snapshot_copy(self: EtcdServer):
            path, _ = await original(self)
            return path, self.raft.storage.snapshot().metadata
        return snapshot_copy
    stack = contextlib.ExitStack()
    stack.enter_context(_patched(EtcdServer, "snapshot_copy", make_copy))
    stack.enter_context(_patched(snapshot, "check_received", lambda original: lambda path, message: None))
    return stack


def conf_change_over_snapshot() -> contextlib.AbstractContextManager:
    def make(original):
        def apply(self: EtcdServer, entries) -> None:
            restored, self._restored_index = self._restored_index, 0
            try:
                original(self, entries)
            finally:
                self._restored_index = restored
        return apply
    return _patched(EtcdServer, "apply", make)


def watch_restore_keeps_synced() -> contextlib.AbstractContextManager:
    return _patched(WatchableStore, "restore", lambda original: lambda self, old_rev: None)


def watch_full_skips_one() -> contextlib.AbstractContextManager:
    return _patched(WatchableStore, "_fall_behind",
                    lambda original: lambda self, w, first_rev: original(self, w, first_rev + 1))


def watch_prev_kv_is_current() -> contextlib.AbstractContextManager:
    def make(original):
        def previous(self, change):
            found = self.get(change.key)
            return found.SerializeToString() if found is not None and original(self, change) is not None else None
        return previous
    return _patched(ReadTxn, "previous", make)


PLANTS: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "snapshot-before-judgement": snapshot_before_judgement,
    "read-any-answer": read_any_answer,
    "wal-keeps-log": wal_keeps_log,
    "snapshot-says-raft-index": snapshot_says_raft_index,
    "conf-change-over-snapshot": conf_change_over_snapshot,
    "watch-restore-keeps-synced": watch_restore_keeps_synced,
    "watch-full-skips-one": watch_full_skips_one,
    "watch-prev-kv-is-current": watch_prev_kv_is_current,
}
