"""The backend: one LMDB environment holding every bucket of a member's state.

Like etcd's bbolt backend, but LMDB: a B+tree in one memory-mapped file, one writer, readers
that never block it. As in etcd, changes go into a *batch*: one write transaction kept open
across applies and committed by the server every BATCH_INTERVAL or so (etcd's backend batch
interval and limit). Reads on the loop thread see the batch at once (``pending``); what a crash
loses of it the WAL replays (Raft's applied index is recorded in the same transaction). A commit
per apply would write every B-tree page on the paths it touches, and, while a checkpoint pins an
older state, write them to new pages that the checkpoint's fsync must then carry to the disk.
Commits are not synced (the WAL is the durability point); what survives a power loss is the
last checkpoint (see checkpoint.py), taken when the backend opens and whenever the server calls
``checkpoint()``.
"""
from __future__ import annotations

import os
import struct
import threading
from typing import Callable

import lmdb

from pyetcd.fileutil import OS, FileSystem, fsync_file, makedirs_durably
from pyetcd.storage import checkpoint as checkpoints

# Named sub-databases opened at start. Dupsort ones hold many values per key (the key index).
DUPSORT_BUCKETS = ("kindex", "klong")
_BUCKETS = ("meta", "key", "kindex", "klong", "kbucket", "lease", "auth", "members", "alarm")

_U64 = struct.Struct(">Q")
_CI_KEY = b"consistent_index"
_TERM_KEY = b"term"


class _Buckets:
    """What every opened environment offers: buckets, read transactions, the meta helpers."""

    env: lmdb.Environment
    _dbs: dict[bytes, lmdb._Database]

    def db(self, name: str) -> lmdb._Database:
        raise NotImplementedError

    def begin_read(self) -> lmdb.Transaction:
        """A read transaction on the committed state (a Backend's open batch is not in it)."""
        return self.env.begin(buffers=False)

    def get_u64(self, txn: lmdb.Transaction, key: bytes, default: int = 0) -> int:
        raw = txn.get(key, db=self.db("meta"))
        return default if raw is None else _U64.unpack(raw)[0]

    def consistent_index(self, txn: lmdb.Transaction) -> tuple[int, int]:
        """The applied Raft (index, term) recorded with the data."""
        return self.get_u64(txn, _CI_KEY), self.get_u64(txn, _TERM_KEY)


class Backend(_Buckets):
    def __init__(self, path: str, *, fs: FileSystem = OS, map_size: int = 8 << 30) -> None:
        """Open (or create) the environment in directory ``path``; after a power loss it comes
        back at its last checkpoint (``restored`` says which). Ends with a checkpoint."""
        makedirs_durably(fs, path)
        self.path = path
        self._fs = fs
        self.data_file = os.path.join(path, checkpoints.DATA_FILE)
        self.restored = checkpoints.restore_if_power_lost(fs, path)
        self.env = lmdb.open(path, map_size=map_size, subdir=True, sync=False, metasync=False,
                             readahead=False, max_dbs=16, lock=True)
        self._pin: lmdb.Transaction | None = None
        self.pending: lmdb.Transaction | None = None  # the open batch
        self._changed: set[tuple[lmdb._Database, bytes]] | None = None  # see record_changes
        # called when a batch opens (the server schedules its commit)
        self.on_batch_opened: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._dbs: dict[bytes, lmdb._Database] = {}
        for name in _BUCKETS:
            self.db(name)
        self.checkpoint()

    def db(self, name: str) -> lmdb._Database:
        """The named sub-database, created on first use (not while a write txn is open)."""
        key = name.encode()
        handle = self._dbs.get(key)
        if handle is None:
            handle = self.env.open_db(key, dupsort=name in DUPSORT_BUCKETS)
            self._dbs[key] = handle
        return handle

    def write_txn(self) -> lmdb.Transaction:
        """The batch, opened on first use: every change goes into it. Only the thread that
        opened it may use it (the server's loop)."""
        if self.pending is None:
            self.pending = self.env.begin(write=True)
            if self._changed is not None:
                self.pending = _RecordingTxn(self.pending, self._changed)
            if self.on_batch_opened is not None:
                self.on_batch_opened()
        return self.pending

    def record_changes(self) -> None:
        """From now on remember every (bucket, key) written, until ``take_changes(stop=True)``
        (an online defrag catches its copy up with them). The open batch is committed first."""
        self.commit()
        self._changed = set()

    def take_changes(self, *, stop: bool = False) -> set[tuple[lmdb._Database, bytes]]:
        """The (bucket, key)s written since the last call (committed first, so a read transaction
        begun afterwards sees every one of them); ``stop`` ends the recording."""
        self.commit()
        changed = self._changed if self._changed is not None else set()
        self._changed = None if stop else set()
        return changed

    def bucket_names(self) -> dict[lmdb._Database, str]:
        return {handle: name.decode() for name, handle in self._dbs.items()}

    def commit(self) -> None:
        """Commit the batch, if one is open (not synced: see checkpoint)."""
        if self.pending is not None:
            batch, self.pending = self.pending, None
            batch.commit()

    def abort(self) -> None:
        """Drop the batch: a write failed halfway, and whoever writes must stop (the WAL still
        holds what the batch applied)."""
        if self.pending is not None:
            batch, self.pending = self.pending, None
            batch.abort()

    def checkpoint(self) -> int:
        """Make the current state durable and the one to come back to after a power loss;
        returns its applied index. Blocking (it fsyncs)."""
        return self.begin_checkpoint()()

    def begin_checkpoint(self) -> Callable[[], int]:
        """The part of a checkpoint that must not overlap a commit (pin the state, copy its meta
        page: call it where commits happen); returns the blocking rest (the fsync, the file),
        which may run in a worker thread, and returns the state's applied index. The batch is
        committed first: the checkpoint covers everything applied."""
        self.commit()
        psize = self.env.stat()["psize"]
        pin = self.env.begin()
        page = checkpoints.read_meta_page(self._fs, self.data_file, psize, pin.id())
        if page is None:
            pin.abort()
            raise checkpoints.CheckpointError("the newest meta page does not name the newest transaction")
        index = self.consistent_index(pin)[0]

        def finish() -> int:
            with self._lock:
                if self.env is None:  # closed meanwhile (which aborted every transaction)
                    return index
                if self._pin is not None and self._pin.id() >= pin.id():
                    pin.abort()  # a newer checkpoint finished first: never go back to an older one (sim F13)
                    return index
                fsync_file(self._fs, self.data_file)
                checkpoints.save(self._fs, self.path, checkpoints.Checkpoint(pin.id(), index, self._fs.boot_id(), page))
                previous, self._pin = self._pin, pin
                if previous is not None:
                    previous.abort()
            return index
        return finish

    def size(self) -> int:
        """Bytes of the data file (etcd's dbSize)."""
        return os.stat(os.path.join(self.path, "data.mdb")).st_size

    def size_in_use(self) -> int:
        """Bytes of the pages holding data (etcd's dbSizeInUse)."""
        with self.env.begin() as txn:
            stats = [txn.stat()] + [txn.stat(db) for db in self._dbs.values()]
        pages = 2 + sum(s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"] for s in stats)
        return pages * stats[0]["psize"]

    def close(self) -> None:
        """Commit the batch and close (a process that dies loses the batch instead)."""
        with self._lock:  # (a checkpoint finishing in a worker thread)
            if self.env is None:
                return
            self.commit()
            if self._pin is not None:
                self._pin.abort()
                self._pin = None
            self.env.close()
            self.env = None

    # ---- meta helpers --------------------------------------------------------------------

    def put_u64(self, txn: lmdb.Transaction, key: bytes, value: int) -> None:
        txn.put(key, _U64.pack(value), db=self._dbs[b"meta"])

    def set_consistent_index(self, txn: lmdb.Transaction, index: int, term: int) -> None:
        self.put_u64(txn, _CI_KEY, index)
        self.put_u64(txn, _TERM_KEY, term)



class _RecordingTxn:
    """A write transaction that notes the (bucket, key) of every put and delete."""

    __slots__ = ("_txn", "_changed")

    def __init__(self, txn: lmdb.Transaction, changed: set[tuple[lmdb._Database, bytes]]) -> None:
        self._txn = txn
        self._changed = changed

    def put(self, key: bytes, value: bytes, *, db: lmdb._Database, **options: bool) -> bool:
        self._changed.add((db, key))
        return self._txn.put(key, value, db=db, **options)

    def delete(self, key: bytes, value: bytes = b"", *, db: lmdb._Database) -> bool:
        self._changed.add((db, key))
        return self._txn.delete(key, value, db=db)

    def __getattr__(self, name: str):  # reads, cursors, commit, abort
        return getattr(self._txn, name)


class BackendCopy(_Buckets):
    """A database copy (one data file, e.g. received from the leader) opened read-only, to see
    what it holds before anything is done with it. Use as a context manager."""

    def __init__(self, file_path: str) -> None:
        self.env = lmdb.open(file_path, subdir=False, readonly=True, lock=False, max_dbs=16)
        # (handles opened while a read transaction is open would not be valid in it)
        self._dbs = {name.encode(): self.env.open_db(name.encode(), create=False) for name in ("meta", "members")}

    def db(self, name: str) -> lmdb._Database:
        return self._dbs[name.encode()]

    def __enter__(self) -> "BackendCopy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.env.close()
