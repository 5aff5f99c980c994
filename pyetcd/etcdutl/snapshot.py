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
import shutil
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


def _has_hash(size: int) -> bool:
    """As etcd decides: a file of whole 512-byte blocks plus 32 bytes ends with its SHA-256."""
    return size % 512 == SHA_SIZE


def copy_database(path: str, dest: str, skip_hash_check: bool = False) -> None:
    """Copy the database in the snapshot file to ``dest`` (streamed), its SHA-256 checked; a
    copy of a data dir's file has none and needs ``skip_hash_check``."""
    size = os.path.getsize(path)
    has_hash = _has_hash(size)
    if not has_hash and not skip_hash_check:
        raise SnapshotError("snapshot missing hash but --skip-hash-check=false")
    digest, left = hashlib.sha256(), size - (SHA_SIZE if has_hash else 0)
    with open(path, "rb") as src, open(dest, "wb") as out:
        while left:
            chunk = src.read(min(left, 1 << 20))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
        want = src.read()
    if has_hash and not skip_hash_check and digest.digest() != want:
        raise SnapshotError(f"expected sha256 {_go_bytes(want)}, got {_go_bytes(digest.digest())}")


def status(path: str) -> Status:
    size = os.path.getsize(path)  # (a missing file is reported as such)
    size -= SHA_SIZE if _has_hash(size) else 0
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

    if os.path.exists(cfg.data_dir) and (not os.path.isdir(cfg.data_dir) or os.listdir(cfg.data_dir)):
        raise SnapshotError(f'data-dir "{cfg.data_dir}" not empty or could not be read')
    os.stat(path)  # (before anything is made: a missing file is reported as such)
    existed = os.path.isdir(cfg.data_dir)
    makedirs_durably(OS, cfg.backend_path)
    makedirs_durably(OS, cfg.snap_dir)
    data_file = os.path.join(cfg.backend_path, checkpoint.DATA_FILE)
    try:
        copy_database(path, data_file, skip_hash_check)
    except SnapshotError:  # leave the data dir as it was: empty, or not there
        for name in os.listdir(cfg.data_dir) if existed else ():
            shutil.rmtree(os.path.join(cfg.data_dir, name))
        if not existed:
            shutil.rmtree(cfg.data_dir)
        raise
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
