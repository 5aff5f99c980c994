"""The backend: one LMDB environment holding every bucket of a member's state.

Like etcd's bbolt backend, but LMDB: a B+tree in one memory-mapped file, one writer, readers
that never block it. Writes are not synced on commit (the WAL is the durability point); the
server calls ``sync()`` at checkpoints.
"""
from __future__ import annotations

import os
import struct

import lmdb

# Named sub-databases opened at start. Dupsort ones hold many values per key (the key index).
_DUPSORT = ("kindex", "klong")
_BUCKETS = ("meta", "key", "kindex", "klong", "kbucket", "lease", "auth", "members", "alarm")

_U64 = struct.Struct(">Q")
_CI_KEY = b"consistent_index"
_TERM_KEY = b"term"


class Backend:
    def __init__(self, path: str, *, map_size: int = 8 << 30) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.env = lmdb.open(path, map_size=map_size, subdir=True, sync=False, metasync=False,
                             readahead=False, max_dbs=16, lock=True)
        self._dbs: dict[bytes, lmdb._Database] = {}
        for name in _BUCKETS:
            self.db(name)

    def db(self, name: str) -> lmdb._Database:
        """The named sub-database, created on first use (not while a write txn is open)."""
        key = name.encode()
        handle = self._dbs.get(key)
        if handle is None:
            handle = self.env.open_db(key, dupsort=name in _DUPSORT)
            self._dbs[key] = handle
        return handle

    def begin_read(self) -> lmdb.Transaction:
        return self.env.begin(buffers=False)

    def begin_write(self) -> lmdb.Transaction:
        return self.env.begin(write=True)

    def sync(self) -> None:
        self.env.sync(True)

    def size(self) -> int:
        """Bytes of the data file (etcd's dbSize)."""
        return os.stat(os.path.join(self.path, "data.mdb")).st_size

    def size_in_use(self) -> int:
        """Bytes of the pages holding data (etcd's dbSizeInUse)."""
        with self.env.begin() as txn:
            stats = [txn.stat()] + [txn.stat(db) for db in self._dbs.values()]
        pages = 2 + sum(s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"] for s in stats)
        return pages * stats[0]["psize"]

    def copy_to(self, path: str, compact: bool = True) -> None:
        """A consistent copy of the environment into directory ``path`` (snapshot, defrag)."""
        os.makedirs(path, exist_ok=True)
        self.env.copy(path, compact=compact)

    def close(self) -> None:
        self.env.close()

    # ---- meta helpers --------------------------------------------------------------------

    def get_u64(self, txn: lmdb.Transaction, key: bytes, default: int = 0) -> int:
        raw = txn.get(key, db=self._dbs[b"meta"])
        return default if raw is None else _U64.unpack(raw)[0]

    def put_u64(self, txn: lmdb.Transaction, key: bytes, value: int) -> None:
        txn.put(key, _U64.pack(value), db=self._dbs[b"meta"])

    def consistent_index(self, txn: lmdb.Transaction) -> tuple[int, int]:
        """The applied Raft (index, term) recorded with the data."""
        return self.get_u64(txn, _CI_KEY), self.get_u64(txn, _TERM_KEY)

    def set_consistent_index(self, txn: lmdb.Transaction, index: int, term: int) -> None:
        self.put_u64(txn, _CI_KEY, index)
        self.put_u64(txn, _TERM_KEY, term)
