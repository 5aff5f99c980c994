"""Multi-version key-value store with etcd's revision semantics, on the LMDB backend.

The store revision starts at 1. Every write request that changes something takes the next
main revision; its changes get sub-revisions 0, 1, 2... Bucket ``key`` maps the packed
revision (see keyindex.REV) to the serialized mvccpb.KeyValue written then (for a tombstone:
the key and its mod_revision), so it doubles as the event log watchers replay. Current
revision, compacted revision and the applied Raft index live in ``meta`` and change in the
same LMDB transaction as the data.

Compaction has two halves, as in etcd. Applying a CompactionRequest only schedules it
(``WriteTxn.compact``): it records the compacted revision, and reads below it fail from then
on. ``KVStore.compact_batch`` later drops the obsolete history in write transactions of their
own, ``limit`` revisions at a time (the server's Compactor drives it between other work). Its
progress lives in ``meta`` only, so a restarted process, or a member given a copy of this
database, resumes it:

- ``compact_rev``: the compacted (scheduled) revision; etcd's scheduledCompactRev.
- ``finished_compact_rev``: the compacted revision whose obsolete history is all gone.
- ``compact_scan``: while a compaction is unfinished, the packed revision from which its walk
  over the history resumes (absent: from ``finished_compact_rev + 1``).

Only keys changed after the finished compaction can have history to drop, so the walk covers
the changes with main revision in (finished, scheduled]; every key met there is compacted.
What is visible (history, HashKV) never depends on how far the walk got: below or at the
compacted revision, only the changes a finished compaction keeps count.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import NamedTuple

import lmdb

from pyetcd import errors
from pyetcd.proto.mvccpb import kv_pb2
from pyetcd.storage.backend import Backend
from pyetcd.storage.keyindex import FLAG, PUT, REV, TOMBSTONE, KeyIndex

_REV_KEY = b"current_rev"
_COMPACT_KEY = b"compact_rev"
_FINISHED_KEY = b"finished_compact_rev"
_SCAN_KEY = b"compact_scan"
_NO_COMPACT = -1  # etcd's compacted revision before any compaction
KeyValue = kv_pb2.KeyValue


class Change(NamedTuple):
    """One entry of the revision log, as stored: what a watcher is sent."""
    revision: bytes  # packed (main, sub, flag): see keyindex.REV
    key: bytes
    kv: bytes        # serialized KeyValue (a tombstone: the key and its mod_revision)

    @property
    def main(self) -> int:
        return REV.unpack(self.revision)[0]

    @property
    def deleted(self) -> bool:
        return self.revision[FLAG] == TOMBSTONE


class KVStore:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def read(self) -> ReadTxn:
        """A view of everything applied: the backend's open batch if there is one (on the loop
        thread only), else the committed state."""
        batch = self.backend.pending
        if batch is not None:
            return ReadTxn(self.backend, batch, owned=False)
        return ReadTxn(self.backend, self.backend.begin_read())

    def write(self) -> WriteTxn:
        """Changes into the backend's batch (committed later, see backend.py)."""
        return WriteTxn(self.backend, self.backend.write_txn())

    def _meta(self, name: str) -> int:
        with self.read() as view:
            return getattr(view, name)

    @property
    def rev(self) -> int:
        return self._meta("rev")

    @property
    def compact_rev(self) -> int:
        return self._meta("compact_rev")

    @property
    def finished_compact_rev(self) -> int:
        """The compacted revision up to which the obsolete history is physically gone."""
        return self._meta("finished_compact_rev")

    def compact_batch(self, limit: int) -> bool:
        """Drop at most ``limit`` revisions (and as many key index entries) made obsolete by
        the scheduled compaction, in a write transaction of its own, looking at no more than
        ``limit`` changes of the history. Returns whether the compaction is finished."""
        with self.write() as w:
            return w.drop_obsolete(limit)

    @property
    def consistent_index(self) -> int:
        with self.read() as view:
            return self.backend.consistent_index(view.txn)[0]


class ReadTxn:
    """A consistent view of the store; also the read half of WriteTxn."""

    def __init__(self, backend: Backend, txn: lmdb.Transaction, owned: bool = True) -> None:
        self.backend = backend
        self.txn = txn
        self._owned = owned  # (a view of the batch must not end it)
        self.index = KeyIndex(txn, backend)
        self._key = backend.db("key")
        self.rev = backend.get_u64(txn, _REV_KEY, 1)
        self.compact_rev = self._signed(_COMPACT_KEY)
        self.finished_compact_rev = self._signed(_FINISHED_KEY)

    def _signed(self, key: bytes) -> int:
        """A compacted revision from ``meta`` (stored as u64; -1 before any compaction)."""
        raw = self.backend.get_u64(self.txn, key, _NO_COMPACT & 0xFFFFFFFFFFFFFFFF)
        return raw - (1 << 64) if raw >= 1 << 63 else raw

    def __enter__(self) -> ReadTxn:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._owned:
            self.txn.abort()

    def visible_rev(self) -> int:
        """The revision a read at revision 0 sees."""
        return self.rev

    def range(self, key: bytes, end: bytes | None, rev: int = 0, limit: int = 0,
              count_only: bool = False) -> tuple[list[bytes], int, int]:
        """Serialized KeyValues in [key, end) at ``rev`` (0: current), at most ``limit`` (0: all).

        ``end`` None is the single key, ``b""`` no upper bound. Returns (kvs, count of keys in
        the range, current revision).
        """
        current = self.visible_rev()
        if rev > current:
            raise errors.ErrFutureRev
        if rev <= 0:
            rev = current
        if rev < self.compact_rev:
            raise errors.ErrCompacted
        found = self.index.scan(key, end, rev, latest=rev == current)
        if count_only:
            return [], len(found), current
        get, db = self.txn.get, self._key
        chosen = found[:limit] if limit > 0 else found
        return [get(r, db=db) for _, r in chosen], len(found), current

    def get(self, key: bytes) -> KeyValue | None:
        """The live KeyValue of ``key`` as this view sees it, if any."""
        found = self.index.newest(key, 0, latest=True)
        if found is None or found[FLAG] != PUT:
            return None
        return KeyValue.FromString(self.txn.get(found, db=self._key))

    def history(self, start_rev: int, end_rev: int = 0, limit: int = 0) -> list[Change]:
        """Every change with main revision in [start_rev, end_rev] (end_rev 0: no bound), in
        revision order (what a watcher catching up replays). Nothing below the compacted
        revision, even while it is still stored; at it, only what a finished compaction keeps.
        ``limit`` > 0 stops after that many changes, at the end of a revision (a revision's
        changes are never split)."""
        out: list[Change] = []
        stop_main = None
        for revision, raw in self._changes(max(start_rev, self.compact_rev), end_rev):
            if stop_main is not None and revision[:8] != stop_main:
                break
            out.append(Change(revision, KeyValue.FromString(raw).key, raw))
            if limit and len(out) >= limit and stop_main is None:
                stop_main = revision[:8]
        return out

    def previous(self, change: Change) -> bytes | None:
        """The serialized KeyValue ``change``'s key had just before it (a watcher's prev_kv),
        if it was live then and its history is still kept."""
        main = change.main
        found = self.index.newest(change.key, main - 1) if main > 1 else None
        if found is None or found[FLAG] != PUT or main - 1 < self.compact_rev:
            return None
        return self.txn.get(found, db=self._key)

    def _changes(self, start_rev: int, end_rev: int) -> Iterator[tuple[bytes, bytes]]:
        """The stored changes with main revision in [start_rev, end_rev] (0: no bound) that a
        finished compaction keeps, in revision order."""
        cur = self.txn.cursor(db=self._key)
        if not cur.set_range(REV.pack(max(start_rev, 0), 0, 0)):
            return
        stop = REV.pack(end_rev + 1, 0, 0) if end_rev > 0 else None
        above = REV.pack(max(self.compact_rev + 1, 0), 0, 0)
        for revision, raw in cur.iternext():
            if stop is not None and revision >= stop:
                break
            if revision >= above or self._kept(revision, raw):
                yield revision, raw

    def _kept(self, revision: bytes, raw: bytes) -> bool:
        """Whether compaction keeps a change at or below the compacted revision: only the
        newest change of its key there, and only if it is a put."""
        if revision[FLAG] != PUT:
            return False
        return self.index.newest(KeyValue.FromString(raw).key, self.compact_rev) == revision

    def hash_kv(self, rev: int = 0) -> tuple[int, int]:
        """(CRC-32 of every change up to ``rev`` that a finished compaction keeps, the revision
        hashed): equal on members that applied the same log, however far their physical
        compaction got (etcd's HashKV; the value itself is ours)."""
        current = self.visible_rev()
        if rev > current:
            raise errors.ErrFutureRev
        if rev <= 0:
            rev = current
        if rev < self.compact_rev:
            raise errors.ErrCompacted
        crc = zlib.crc32(b"key")  # the bucket's name: an empty store does not hash to 0
        for revision, raw in self._changes(0, rev):
            crc = zlib.crc32(raw, zlib.crc32(revision, crc))
        return crc, rev


class WriteTxn(ReadTxn):
    """Changes of one apply batch (many requests, each ended by finish_request) into the
    backend's batch. Leaving it with an exception drops the whole backend batch: whoever
    writes must stop then."""

    def __init__(self, backend: Backend, txn: lmdb.Transaction) -> None:
        super().__init__(backend, txn, owned=False)
        self._changes = 0
        self._events: list[Change] = []
        self._dirty = False

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            if self._dirty:
                self.backend.put_u64(self.txn, _REV_KEY, self.rev)
        else:
            self.backend.abort()

    def visible_rev(self) -> int:
        return self.rev + 1 if self._changes else self.rev

    @property
    def pending(self) -> bool:
        """Whether the current request has written something."""
        return self._changes > 0

    def put(self, key: bytes, value: bytes, lease: int, prev: KeyValue | None) -> int:
        """Write ``key``; ``prev`` is its live KeyValue (from get) or None. Returns the revision."""
        main = self.rev + 1
        kv = KeyValue(key=key, value=value, mod_revision=main, lease=lease)
        if prev is None:
            kv.create_revision = main
            kv.version = 1
        else:
            kv.create_revision = prev.create_revision
            kv.version = prev.version + 1
        revision = REV.pack(main, self._changes, PUT)
        raw = kv.SerializeToString()
        self.txn.put(revision, raw, db=self._key, append=True)
        self.index.add(key, revision)
        self._changes += 1
        self._events.append(Change(revision, key, raw))
        return main

    def delete_range(self, key: bytes, end: bytes | None, want_prev: bool = False
                     ) -> tuple[int, list[bytes]]:
        """Tombstone every live key in [key, end). Returns (count, serialized previous kvs if
        ``want_prev``)."""
        found = self.index.scan(key, end, self.visible_rev(), latest=True)
        prevs = [self.txn.get(r, db=self._key) for _, r in found] if want_prev else []
        main = self.rev + 1
        for k, _ in found:
            revision = REV.pack(main, self._changes, TOMBSTONE)
            raw = KeyValue(key=k, mod_revision=main).SerializeToString()
            self.txn.put(revision, raw, db=self._key, append=True)
            self.index.add(k, revision)
            self._changes += 1
            self._events.append(Change(revision, k, raw))
        return len(found), prevs

    def finish_request(self) -> list[Change]:
        """End one request: it took a revision if it changed anything. Returns its changes."""
        events, self._events = self._events, []
        if self._changes:
            self.rev += 1
            self._changes = 0
            self._dirty = True
        return events

    def compact(self, rev: int) -> None:
        """Schedule a compaction at ``rev`` (etcd's Compact at apply): reads below ``rev`` fail
        from now on, KVStore.compact_batch drops the history later. Raises ErrCompacted /
        ErrFutureRev. A compaction still unfinished is simply extended to ``rev``."""
        if rev <= self.compact_rev:
            raise errors.ErrCompacted
        if rev > self.rev:
            raise errors.ErrFutureRev
        self.compact_rev = rev
        self.backend.put_u64(self.txn, _COMPACT_KEY, rev)

    def drop_obsolete(self, limit: int) -> bool:
        """One batch of the scheduled compaction's physical work (see KVStore.compact_batch)."""
        if self.finished_compact_rev >= self.compact_rev:
            return True
        meta = self.backend.db("meta")
        start = self.txn.get(_SCAN_KEY, db=meta) or REV.pack(self.finished_compact_rev + 1, 0, 0)
        changes = self._changed_keys(start, limit + 1)
        dropped = 0
        done: set[bytes] = set()
        for revision, key in changes[:limit]:
            if key in done:
                continue
            gone = self.index.compact_key(key, self.compact_rev, limit - dropped)
            for r in gone:
                self.txn.delete(r, db=self._key)
            dropped += len(gone)
            if dropped == limit:  # this key may have more: start there next time
                self.txn.put(_SCAN_KEY, revision, db=meta)
                return False
            done.add(key)
        if len(changes) > limit:
            self.txn.put(_SCAN_KEY, changes[limit][0], db=meta)
            return False
        self.txn.delete(_SCAN_KEY, db=meta)
        self.finished_compact_rev = self.compact_rev
        self.backend.put_u64(self.txn, _FINISHED_KEY, self.compact_rev)
        return True

    def _changed_keys(self, start: bytes, count: int) -> list[tuple[bytes, bytes]]:
        """(revision, key) of at most ``count`` stored changes from packed revision ``start``
        up to the compacted revision."""
        stop = REV.pack(self.compact_rev + 1, 0, 0)
        cur = self.txn.cursor(db=self._key)
        out: list[tuple[bytes, bytes]] = []
        if cur.set_range(start):
            for revision, raw in cur.iternext():
                if revision >= stop or len(out) == count:
                    break
                out.append((revision, KeyValue.FromString(raw).key))
        return out

