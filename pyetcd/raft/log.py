"""RaftLog: the stable log (Storage) plus what Raft appended but the server has not yet persisted.

Indexes: ``first_index() .. last_index()`` are addressable; ``first_index() - 1`` is the
snapshot's index, whose term is still known. ``committed`` and ``applied`` never go backwards,
except that a restored snapshot moves both to its index.
"""
from __future__ import annotations

from pyetcd.proto.raftpb import raft_pb2
from pyetcd.raft.storage import CompactedError, MemoryStorage, StorageError, limit_size

Entry = raft_pb2.Entry


class RaftLog:
    def __init__(self, storage: MemoryStorage, max_committed_size: int) -> None:
        self.storage = storage
        self.max_committed_size = max_committed_size
        first, last = storage.first_index(), storage.last_index()
        # Unstable part: an incoming snapshot and/or entries from `offset` on, not yet persisted.
        self.unstable_snapshot: raft_pb2.Snapshot | None = None
        self.unstable: list[Entry] = []
        self.offset = last + 1
        # The state machine starts from the snapshot, which may be newer than the compaction point.
        self.committed = self.applied = max(first - 1, storage.snapshot().metadata.index)

    # ---- indexes and terms ----
    def first_index(self) -> int:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.metadata.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.offset + len(self.unstable) - 1
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.metadata.index
        return self.storage.last_index()

    def term(self, index: int) -> int | None:
        """The term of the entry at index, or None when it is compacted away or beyond the log."""
        if index >= self.offset and self.unstable:
            i = index - self.offset
            return self.unstable[i].term if i < len(self.unstable) else None
        snap = self.unstable_snapshot
        if snap is not None:
            if index == snap.metadata.index:
                return snap.metadata.term
            if index < snap.metadata.index:
                return None
        if index >= self.offset:
            return None
        try:
            return self.storage.term(index)
        except StorageError:
            return None

    def last_term(self) -> int:
        return self.term(self.last_index()) or 0

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, index: int, term: int) -> bool:
        """Whether a log ending at (index, term) is at least as up to date as ours (the vote rule)."""
        last_term = self.last_term()
        return term > last_term or (term == last_term and index >= self.last_index())

    # ---- reading entries ----
    def slice(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries [lo, hi) limited to max_size bytes; raises CompactedError if lo is compacted."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise CompactedError(lo)
        ents: list[Entry] = []
        if lo < self.offset:
            ents = self.storage.entries(lo, min(hi, self.offset), max_size)
            if len(ents) < min(hi, self.offset) - lo:
                return ents  # size limit reached inside the stable part
        if hi > self.offset:
            ents = ents + self.unstable[max(lo, self.offset) - self.offset:hi - self.offset]
        return ents if max_size is None else limit_size(ents, max_size)

    def entries_from(self, index: int, max_size: int | None) -> list[Entry]:
        return self.slice(index, self.last_index() + 1, max_size)

    def has_next_committed(self) -> bool:
        return self.committed > max(self.applied, self.first_index() - 1)

    def next_committed(self) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        if self.committed + 1 > lo:
            return self.slice(lo, self.committed + 1, self.max_committed_size)
        return []

    def snapshot(self) -> raft_pb2.Snapshot:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot
        return self.storage.snapshot()

    # ---- writing ----
    def append(self, entries: list[Entry]) -> int:
        """Append entries (truncating any conflicting suffix); returns the new last index."""
        if not entries:
            return self.last_index()
        after = entries[0].index
        if after <= self.committed:
            raise AssertionError(f"append at {after} would overwrite committed {self.committed}")
        if after == self.offset + len(self.unstable):
            self.unstable.extend(entries)
        elif after <= self.offset:
            # Replaces everything unstable; the stable part beyond `after` is superseded too.
            self.offset = after
            self.unstable = list(entries)
        else:
            self.unstable = self.unstable[:after - self.offset] + list(entries)
        return self.last_index()

    def find_conflict(self, entries: list[Entry]) -> int:
        """Index of the first entry that is new or conflicts with ours; 0 if all are present."""
        for e in entries:
            if self.term(e.index) != e.term:
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= index whose term is <= term (fast back-off after a rejection)."""
        while index > 0:
            t = self.term(index)
            if t is None or t <= term:
                return index
            index -= 1
        return 0

    def maybe_append(self, index: int, log_term: int, committed: int,
                     entries: list[Entry]) -> int | None:
        """The follower side of MsgApp: returns the last index now known to match, or None."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            if conflict <= self.committed:
                raise AssertionError(f"entry {conflict} conflicts with committed entry {self.committed}")
            self.append(entries[conflict - index - 1:])
        self.commit_to(min(committed, last_new))
        return last_new

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise AssertionError(f"commit {index} out of range [last {self.last_index()}]")
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit up to index if the entry there is of term (only current-term entries commit)."""
        if index > self.committed and self.term(index) == term:
            self.committed = index
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index:
            self.applied = max(self.applied, index)

    def stable_to(self, index: int, term: int) -> None:
        """The server persisted entries up to (index, term): drop them from the unstable part."""
        if index < self.offset or not self.unstable:
            return
        i = index - self.offset
        if i < len(self.unstable) and self.unstable[i].term == term:
            del self.unstable[:i + 1]
            self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.unstable_snapshot is not None and self.unstable_snapshot.metadata.index == index:
            self.unstable_snapshot = None

    def restore(self, snap: raft_pb2.Snapshot) -> None:
        """Replace the log with a snapshot received from the leader."""
        self.committed = snap.metadata.index
        self.unstable_snapshot = snap
        self.unstable = []
        self.offset = snap.metadata.index + 1
