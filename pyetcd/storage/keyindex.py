"""The MVCC key index, kept in LMDB: for every user key, the revisions that changed it.

Layout (DESIGN §3):
- ``kindex`` (dupsort): user key -> one 17-byte value per change, ``main(8) sub(8) flag(1)``
  big-endian, flag 0 = put, 1 = tombstone. Dups sort by revision, so "newest change of k at
  or below rev" is a cursor seek and a range scan walks keys with ``next_nodup``.
- LMDB keys are at most 511 bytes, etcd keys are not. A key of ``LONG`` bytes or more lives in
  ``klong`` (dupsort, blake2b(key) -> revisions) and is listed, sorted, in the bucket
  ``kbucket[key[:LONG]]``; ``kindex`` then holds the marker ``key[:LONG] -> b"L"``. Shorter keys
  are never ``LONG`` bytes long, and every key with prefix P sorts right after P itself, so the
  marker sits exactly where the bucket's keys belong in key order.
"""
from __future__ import annotations

import bisect
import hashlib
import struct
from collections.abc import Iterator

import lmdb

from pyetcd.storage.backend import Backend

REV = struct.Struct(">QQB")
PUT, TOMBSTONE = 0, 1
FLAG = 16  # index of the flag byte in a packed revision
LONG = 511
_MARKER = b"L"
_U64 = struct.Struct(">Q")
_LEN = struct.Struct(">I")


def _hash(key: bytes) -> bytes:
    return hashlib.blake2b(key, digest_size=32).digest()


def _decode_bucket(raw: bytes | None) -> list[bytes]:
    keys, pos = [], 0
    while raw and pos < len(raw):
        (n,) = _LEN.unpack_from(raw, pos)
        keys.append(raw[pos + 4:pos + 4 + n])
        pos += 4 + n
    return keys


def _encode_bucket(keys: list[bytes]) -> bytes:
    return b"".join(_LEN.pack(len(k)) + k for k in keys)


class KeyIndex:
    """The key index as seen through one LMDB transaction."""

    def __init__(self, txn: lmdb.Transaction, backend: Backend) -> None:
        self.txn = txn
        self._kindex = backend.db("kindex")
        self._klong = backend.db("klong")
        self._kbucket = backend.db("kbucket")
        self.cur = txn.cursor(db=self._kindex)
        self._lcur: lmdb.Cursor | None = None

    def _long_cursor(self) -> lmdb.Cursor:
        if self._lcur is None:
            self._lcur = self.txn.cursor(db=self._klong)
        return self._lcur

    @staticmethod
    def _at_or_below(cur: lmdb.Cursor, ikey: bytes, bound: bytes | None) -> bytes | None:
        """Newest dup of ``ikey`` (cursor already on it) below ``bound`` (None: the newest)."""
        if bound is not None and cur.set_range_dup(ikey, bound):
            return cur.value() if cur.prev_dup() else None
        cur.set_key(ikey)
        cur.last_dup()
        return cur.value()

    def newest(self, key: bytes, rev: int, latest: bool = False) -> bytes | None:
        """The newest change (put or tombstone) of ``key`` at or below ``rev``.

        ``latest`` says ``rev`` is at least the newest revision stored, which makes it one seek.
        """
        if not key:
            return None  # LMDB has no empty keys, and etcd never stores one
        if len(key) >= LONG:
            cur, ikey = self._long_cursor(), _hash(key)
        else:
            cur, ikey = self.cur, key
        if not cur.set_key(ikey):
            return None
        return self._at_or_below(cur, ikey, None if latest else _U64.pack(rev + 1))

    def scan(self, start: bytes, end: bytes | None, rev: int, latest: bool = False
             ) -> list[tuple[bytes, bytes]]:
        """(key, revision) of every key live at ``rev`` in [start, end), in key order.

        ``end`` None means the single key ``start``; ``b""`` means no upper bound.
        """
        if end is None:
            found = self.newest(start, rev, latest)
            return [(start, found)] if found is not None and found[FLAG] == PUT else []
        bound = None if latest else _U64.pack(rev + 1)
        out: list[tuple[bytes, bytes]] = []
        cur = self.cur
        ok = cur.set_range(start[:LONG])
        while ok:
            k = cur.key()
            if end and k >= end:
                break
            if len(k) == LONG:
                out.extend(self._scan_bucket(k, start, end, bound))
            else:
                found = self._at_or_below(cur, k, bound)
                if found is not None and found[FLAG] == PUT:
                    out.append((k, found))
            ok = cur.next_nodup()
        return out

    def _scan_bucket(self, prefix: bytes, start: bytes, end: bytes, bound: bytes | None
                     ) -> Iterator[tuple[bytes, bytes]]:
        lcur = self._long_cursor()
        for key in _decode_bucket(self.txn.get(prefix, db=self._kbucket)):
            if key < start:
                continue
            if end and key >= end:
                break
            h = _hash(key)
            if lcur.set_key(h):
                found = self._at_or_below(lcur, h, bound)
                if found is not None and found[FLAG] == PUT:
                    yield key, found

    def add(self, key: bytes, revision: bytes) -> None:
        """Record a change of ``key`` (newer than every change recorded for it)."""
        if len(key) < LONG:
            self.txn.put(key, revision, db=self._kindex, dupdata=True)
            return
        h = _hash(key)
        if self.txn.get(h, db=self._klong) is None:
            self._bucket_update(key, insert=True)
        self.txn.put(h, revision, db=self._klong, dupdata=True)

    def _bucket_update(self, key: bytes, insert: bool) -> None:
        prefix = key[:LONG]
        keys = _decode_bucket(self.txn.get(prefix, db=self._kbucket))
        i = bisect.bisect_left(keys, key)
        if insert:
            keys.insert(i, key)
            self.txn.put(prefix, _MARKER, db=self._kindex, dupdata=True)
        else:
            del keys[i]
        if keys:
            self.txn.put(prefix, _encode_bucket(keys), db=self._kbucket)
        else:
            self.txn.delete(prefix, db=self._kbucket)
            self.txn.delete(prefix, _MARKER, db=self._kindex)

    def compact_key(self, key: bytes, rev: int, limit: int) -> list[bytes]:
        """Forget at most ``limit`` of the changes of ``key`` that a compaction at ``rev`` makes
        obsolete, oldest first: every change at or below ``rev`` but the newest, and that one
        too if it is a tombstone. Returns the dropped revisions.

        The obsolete changes are the oldest ones, so what a partial call leaves is still exactly
        the obsolete set: calling again (after a crash, too) finishes the work."""
        newest = self.newest(key, rev)
        if newest is None:
            return []
        keep_newest = newest[FLAG] == PUT
        if len(key) >= LONG:
            db, cur, ikey = self._klong, self._long_cursor(), _hash(key)
        else:
            db, cur, ikey = self._kindex, self.cur, key
        cur.set_key(ikey)
        dropped: list[bytes] = []
        for r in cur.iternext_dup():
            if len(dropped) == limit or r > newest or (r == newest and keep_newest):
                break
            dropped.append(r)
        for r in dropped:
            self.txn.delete(ikey, r, db=db)
        if db is self._klong and dropped and not cur.set_key(ikey):
            self._bucket_update(key, insert=False)
        return dropped
