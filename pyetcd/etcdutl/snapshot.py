"""etcdutl's snapshot commands on pyetcd's snapshot files (a member's LMDB database followed by
its SHA-256, as Maintenance.Snapshot streams it and ``etcdctl snapshot save`` writes it).

``status`` reports the database's hash (CRC-32 of every bucket's name, keys and values), its
revision, how many entries it holds and its size. ``restore`` makes the data dir of a founder of
a new cluster from it: the database with the members of ``--initial-cluster`` in place of the
old ones, and a WAL that starts at the boot snapshot — what a member's own first start writes
(server/bootstrap.py), so the member then starts as if restarted, with every key and revision
of the snapshot.
"""
from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass

import lmdb

SHA_SIZE = hashlib.sha256().digest_size


class SnapshotError(Exception):
    """etcdutl's error text for a snapshot it cannot use."""


@dataclass
class Status:
    hash: int
    revision: int
    total_key: int
    total_size: int


def _go_bytes(data: bytes) -> str:
    return "[" + " ".join(str(b) for b in data) + "]"


def database_bytes(path: str, skip_hash_check: bool = False) -> bytes:
    """The database in the snapshot file, its SHA-256 checked (as etcd: a file whose size is a
    whole number of 512-byte blocks plus 32 has one; a copy of a data dir's file has none and
    needs ``skip_hash_check``)."""
    with open(path, "rb") as f:
        data = f.read()
    has_hash = len(data) % 512 == SHA_SIZE
    if has_hash:
        db, want = data[:-SHA_SIZE], data[-SHA_SIZE:]
        if not skip_hash_check:
            got = hashlib.sha256(db).digest()
            if got != want:
                raise SnapshotError(f"expected sha256 {_go_bytes(want)}, got {_go_bytes(got)}")
        return db
    if not skip_hash_check:
        raise SnapshotError("snapshot missing hash but --skip-hash-check=false")
    return data


def status(path: str) -> Status:
    os.stat(path)  # (a missing file is reported as such)
    with open(path, "rb") as f:
        size = len(f.read())
    size -= SHA_SIZE if size % 512 == SHA_SIZE else 0
    try:
        env = lmdb.open(path, subdir=False, readonly=True, lock=False, max_dbs=16)
    except lmdb.Error:
        raise SnapshotError("invalid database") from None
    try:
        crc, keys, revision = 0, 0, 0
        with env.begin() as txn:
            names = [name for name, _ in txn.cursor()]
            for name in names:
                crc = zlib.crc32(name, crc)
                for key, value in txn.cursor(db=env.open_db(name, txn=txn, create=False)):
                    crc = zlib.crc32(value, zlib.crc32(key, crc))
                    keys += 1
            meta = env.open_db(b"meta", txn=txn, create=False) if b"meta" in names else None
            raw = txn.get(b"current_rev", db=meta) if meta is not None else None
            revision = int.from_bytes(raw, "big") if raw else 0
    except lmdb.Error:
        raise SnapshotError("invalid database") from None
    finally:
        env.close()
    return Status(crc, revision, keys, size)


def restore(path: str, cfg, skip_hash_check: bool = False) -> None:
    """Make ``cfg``'s data dir a founder of the cluster ``cfg`` describes, holding the snapshot."""
    from pyetcd.fileutil import OS, fsync_file, makedirs_durably
    from pyetcd.server.bootstrap import found_cluster
    from pyetcd.server.etcdserver import FENCE_PREFIX
    from pyetcd.storage import checkpoint
    from pyetcd.storage.backend import Backend

    db = database_bytes(path, skip_hash_check)
    if os.path.exists(cfg.data_dir) and (not os.path.isdir(cfg.data_dir) or os.listdir(cfg.data_dir)):
        raise SnapshotError(f'data-dir "{cfg.data_dir}" not empty or could not be read')
    makedirs_durably(OS, cfg.backend_path)
    makedirs_durably(OS, cfg.snap_dir)
    data_file = os.path.join(cfg.backend_path, checkpoint.DATA_FILE)
    with open(data_file, "wb") as f:
        f.write(db)
    fsync_file(OS, data_file)
    backend = Backend(cfg.backend_path, fs=OS)
    try:
        txn = backend.write_txn()
        txn.drop(backend.db("members"), delete=False)  # the old cluster's members, removed IDs too
        meta = backend.db("meta")
        fences = [key for key, _ in txn.cursor(db=meta) if key.startswith(FENCE_PREFIX)]
        for key in fences:
            txn.delete(key, db=meta)
        found_cluster(cfg, backend, OS)
    finally:
        backend.close()
