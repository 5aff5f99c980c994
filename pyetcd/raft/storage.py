"""Raft's view of the durable log: ``MemoryStorage`` holds what the server has made durable.

The server fills it on start-up from its snapshot and WAL, and appends to it every time it has
persisted a Ready (after the WAL write, before advance()). Raft only reads it.

Layout: ``_ents[0]`` is a dummy entry carrying the index and term of the last compacted entry
(the snapshot's); real entries follow, so ``_ents[i]`` has index ``_ents[0].index + i``.
"""
from __future__ import annotations

from pyetcd.proto.raftpb import raft_pb2

Entry = raft_pb2.Entry


class StorageError(Exception):
    """Base of the errors a Storage raises."""


class CompactedError(StorageError):
    """The requested index is behind the first index: it was compacted into a snapshot."""


class UnavailableError(StorageError):
    """The requested index is beyond the last index."""


class SnapshotOutOfDateError(StorageError):
    """The snapshot is older than the one the storage already holds."""


def entries_size(entries: list[Entry]) -> int:
    """The size Raft charges for entries when limiting batches (payload plus a small header)."""
    return sum(len(e.data) for e in entries) + 16 * len(entries)


def limit_size(entries: list[Entry], max_size: int) -> list[Entry]:
    """The longest prefix of entries within max_size bytes; always at least one entry."""
    if not entries:
        return entries
    size = len(entries[0].data) + 16
    for i in range(1, len(entries)):
        size += len(entries[i].data) + 16
        if size > max_size:
            return entries[:i]
    return entries


class MemoryStorage:
    """An in-memory durable log: entries, hard state, snapshot (with its conf state)."""

    def __init__(self) -> None:
        self.hard_state = raft_pb2.HardState()
        self._snapshot = raft_pb2.Snapshot()
        self._ents: list[Entry] = [Entry()]

    # ---- read side (used by Raft) ----
    def initial_state(self) -> tuple[raft_pb2.HardState, raft_pb2.ConfState]:
        """The persisted hard state and the conf state of the latest snapshot."""
        return self.hard_state, self._snapshot.metadata.conf_state

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def term(self, index: int) -> int:
        offset = self._ents[0].index
        if index < offset:
            raise CompactedError(index)
        if index - offset >= len(self._ents):
            raise UnavailableError(index)
        return self._ents[index - offset].term

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries [lo, hi), limited to max_size bytes (at least one entry)."""
        offset = self._ents[0].index
        if lo <= offset:
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        ents = self._ents[lo - offset:hi - offset]
        return ents if max_size is None else limit_size(ents, max_size)

    def snapshot(self) -> raft_pb2.Snapshot:
        return self._snapshot

    # ---- write side (used by the server) ----
    def set_hard_state(self, hs: raft_pb2.HardState) -> None:
        self.hard_state = raft_pb2.HardState(term=hs.term, vote=hs.vote, commit=hs.commit)

    def append(self, entries: list[Entry]) -> None:
        """Append entries, replacing any existing entries from the first new index on."""
        if not entries:
            return
        first = self.first_index()
        last = entries[-1].index
        if last < first:
            return  # all already compacted
        if first > entries[0].index:
            entries = entries[first - entries[0].index:]
        offset = entries[0].index - self._ents[0].index
        if offset > len(self._ents):
            raise UnavailableError(f"missing log entries [last: {self.last_index()}, append at: {entries[0].index}]")
        del self._ents[offset:]
        self._ents.extend(entries)

    def apply_snapshot(self, snap: raft_pb2.Snapshot) -> None:
        """Replace the whole log by the snapshot (a follower installing its leader's snapshot)."""
        if snap.metadata.index < self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(snap.metadata.index)
        self._snapshot = snap
        self._ents = [Entry(term=snap.metadata.term, index=snap.metadata.index)]

    def create_snapshot(self, index: int, conf_state: raft_pb2.ConfState | None,
                        data: bytes) -> raft_pb2.Snapshot:
        """Record a snapshot of the state machine as of applied index; the log is kept (see compact)."""
        if index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(index)
        if index > self.last_index():
            raise UnavailableError(index)
        meta = raft_pb2.SnapshotMetadata(index=index, term=self.term(index))
        if conf_state is not None:
            meta.conf_state.CopyFrom(conf_state)
        self._snapshot = raft_pb2.Snapshot(data=data, metadata=meta)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Discard the entries up to and including index (they must be covered by a snapshot)."""
        offset = self._ents[0].index
        if index <= offset:
            raise CompactedError(index)
        if index > self.last_index():
            raise UnavailableError(index)
        i = index - offset
        dummy = Entry(term=self._ents[i].term, index=index)
        self._ents = [dummy] + self._ents[i + 1:]
