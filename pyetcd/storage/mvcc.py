"""Multi-version key-value store with etcd's revision semantics, on the LMDB backend.

The store revision starts at 1. Every write request that changes something takes the next
main revision; its changes get sub-revisions 0, 1, 2... Bucket ``key`` maps the packed
revision (see keyindex.REV) to the serialized mvccpb.KeyValue written then (for a tombstone:
the key and its mod_revision), so it doubles as the event log watchers replay. Current
revision, compacted revision and the applied Raft index live in ``meta`` and change in the
same LMDB transaction as the data.
"""
from __future__ import annotations

import zlib

import lmdb

from pyetcd import errors
from pyetcd.proto.mvccpb import kv_pb2
from pyetcd.storage.backend import Backend
from pyetcd.storage.keyindex import FLAG, PUT, REV, TOMBSTONE, KeyIndex

_REV_KEY = b"current_rev"
_COMPACT_KEY = b"compact_rev"
_NO_COMPACT = -1  # etcd's compacted revision before any compaction
KeyValue = kv_pb2.KeyValue
Event = kv_pb2.Event


class KVStore:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def read(self) -> ReadTxn:
        return ReadTxn(self.backend, self.backend.begin_read())

    def write(self) -> WriteTxn:
        return WriteTxn(self.backend, self.backend.begin_write())

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
    def consistent_index(self) -> int:
        with self.read() as view:
            return self.backend.consistent_index(view.txn)[0]


class ReadTxn:
    """A consistent view of the store; also the read half of WriteTxn."""

    def __init__(self, backend: Backend, txn: lmdb.Transaction) -> None:
        self.backend = backend
        self.txn = txn
        self.index = KeyIndex(txn, backend)
        self._key = backend.db("key")
        signed = backend.get_u64(txn, _COMPACT_KEY, _NO_COMPACT & 0xFFFFFFFFFFFFFFFF)
        self.rev = backend.get_u64(txn, _REV_KEY, 1)
        self.compact_rev = signed - (1 << 64) if signed >= 1 << 63 else signed

    def __enter__(self) -> ReadTxn:
        return self

    def __exit__(self, *exc: object) -> None:
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

    def history(self, start_rev: int, end_rev: int = 0) -> list[tuple[bytes, bytes]]:
        """(packed revision, serialized KeyValue) of every change with main revision in
        [start_rev, end_rev] (end_rev 0: no bound), in revision order (what a watcher catching
        up replays)."""
        cur = self.txn.cursor(db=self._key)
        if not cur.set_range(REV.pack(max(start_rev, 0), 0, 0)):
            return []
        if end_rev <= 0:
            return list(cur.iternext())
        stop = REV.pack(end_rev + 1, 0, 0)
        out = []
        for revision, raw in cur.iternext():
            if revision >= stop:
                break
            out.append((revision, raw))
        return out

    def hash_kv(self, rev: int = 0) -> tuple[int, int]:
        """(CRC-32 of every change up to ``rev``, the revision hashed): equal on members that
        applied the same log (etcd's HashKV; the value itself is ours)."""
        current = self.visible_rev()
        if rev > current:
            raise errors.ErrFutureRev
        if rev <= 0:
            rev = current
        if rev < self.compact_rev:
            raise errors.ErrCompacted
        crc = zlib.crc32(b"key")  # the bucket's name: an empty store does not hash to 0
        stop = REV.pack(rev + 1, 0, 0)
        cur = self.txn.cursor(db=self._key)
        if cur.first():
            for revision, raw in cur.iternext():
                if revision >= stop:
                    break
                crc = zlib.crc32(raw, zlib.crc32(revision, crc))
        return crc, rev


class WriteTxn(ReadTxn):
    """The write transaction of one apply batch; many requests, each ended by finish_request."""

    def __init__(self, backend: Backend, txn: lmdb.Transaction) -> None:
        super().__init__(backend, txn)
        self._changes = 0
        self._events: list[Event] = []
        self._dirty = False

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.txn.abort()

    def visible_rev(self) -> int:
        return self.rev + 1 if self._changes else self.rev

    @property
    def pending(self) -> bool:
        """Whether the current request has written something."""
        return self._changes > 0

    def put(self, key: bytes, value: bytes, lease: int, prev: KeyValue | None) -> int:
        """Write ``key``; ``prev`` is its live KeyValue (from get) or None. Returns the revision."""
        main = self.rev + 1
        event = Event()
        kv = event.kv
        kv.key = key
        kv.value = value
        kv.mod_revision = main
        if prev is None:
            kv.create_revision = main
            kv.version = 1
        else:
            kv.create_revision = prev.create_revision
            kv.version = prev.version + 1
        kv.lease = lease
        revision = REV.pack(main, self._changes, PUT)
        self.txn.put(revision, kv.SerializeToString(), db=self._key, append=True)
        self.index.add(key, revision)
        self._changes += 1
        self._events.append(event)
        return main

    def delete_range(self, key: bytes, end: bytes | None, want_prev: bool = False
                     ) -> tuple[int, list[bytes]]:
        """Tombstone every live key in [key, end). Returns (count, serialized previous kvs if
        ``want_prev``)."""
        found = self.index.scan(key, end, self.visible_rev(), latest=True)
        prevs = [self.txn.get(r, db=self._key) for _, r in found] if want_prev else []
        main = self.rev + 1
        for k, _ in found:
            event = Event(type=Event.DELETE)
            event.kv.key = k
            event.kv.mod_revision = main
            revision = REV.pack(main, self._changes, TOMBSTONE)
            self.txn.put(revision, event.kv.SerializeToString(), db=self._key, append=True)
            self.index.add(k, revision)
            self._changes += 1
            self._events.append(event)
        return len(found), prevs

    def finish_request(self) -> list[Event]:
        """End one request: it took a revision if it changed anything. Returns its events."""
        events, self._events = self._events, []
        if self._changes:
            self.rev += 1
            self._changes = 0
            self._dirty = True
        return events

    def compact(self, rev: int) -> None:
        """Drop history below ``rev`` (etcd's Compact); raises ErrCompacted / ErrFutureRev."""
        if rev <= self.compact_rev:
            raise errors.ErrCompacted
        if rev > self.rev:
            raise errors.ErrFutureRev
        # only keys changed after the previous compaction can have history to drop
        changed = {KeyValue.FromString(raw).key for _, raw in self.history(self.compact_rev + 1, rev)}
        dropped = self.index.compact(rev, changed)
        for revision in dropped:
            self.txn.delete(revision, db=self._key)
        self.compact_rev = rev
        self.backend.put_u64(self.txn, _COMPACT_KEY, rev)

    def commit(self) -> None:
        if self._dirty:
            self.backend.put_u64(self.txn, _REV_KEY, self.rev)
        self.txn.commit()
