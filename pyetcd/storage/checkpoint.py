"""Backend checkpoints: the state LMDB returns to after a power loss.

The backend commits without syncing (the WAL is what makes a write durable; an fsync per apply
batch would double the cost of every write). Without syncs LMDB survives a process crash — the
page cache keeps every committed page — but not a power loss: the kernel writes dirty pages back
in any order, so the newest meta page can point at pages that never reached the disk, and pages
of older states are reused by later transactions.

A checkpoint makes one committed state safe to return to:

1. a read transaction is opened on it and kept open until the next checkpoint is durable: LMDB
   never reuses a page that an open reader can still see, so no later write touches that
   state's pages;
2. its meta page (the page naming the state's roots) is copied from the data file;
3. the data file is fsynced: every page of that state is on the disk;
4. the copy is saved with the kernel's boot id in ``checkpoint`` beside ``data.mdb`` (temporary
   file, fsync, rename, fsync of the directory).

At start, a checkpoint written under another boot id means the machine went down since: the
saved meta page is written back over both meta pages, and LMDB opens exactly the checkpointed
state (pages written later are free space to it); the WAL, which is kept back to the
checkpoint's applied index, replays the rest. Under the same boot id the page cache survived,
and the newest state is used. The member writes a checkpoint at start, before it releases WAL
segments (each Raft snapshot) and right after it moves a database received from the leader
into place (that file is fsynced whole before it is moved; the old checkpoint is deleted first,
so a checkpoint always belongs to the data file beside it).
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

from pyetcd.fileutil import FileSystem, write_file_durably

FILE_NAME = "checkpoint"
DATA_FILE = "data.mdb"
_MAGIC = b"PYETCDCP"
_HEADER = struct.Struct(">8sQQI")     # magic, LMDB txn id, consistent index, boot id length
_CRC = struct.Struct(">I")
# LMDB's meta pages are pages 0 and 1 of the data file: a 16-byte page header (page number
# first), then MDB_meta with its transaction id at byte 144.
_META_PAGES = 2
_PGNO = struct.Struct("<Q")
_TXNID = struct.Struct("<Q")
_TXNID_OFFSET = 144
_PAGE_HEADER_FLAGS = struct.Struct("<H")
_P_META = 0x08
_LMDB_MAGIC = struct.Struct("<I")
_LMDB_MAGIC_VALUE = 0xBEEFC0DE


class CheckpointError(Exception):
    """The checkpoint file or the data file's meta pages are not what they must be."""


@dataclass(frozen=True)
class Checkpoint:
    txn_id: int
    consistent_index: int
    boot_id: str
    meta_page: bytes

    def encode(self) -> bytes:
        boot = self.boot_id.encode()
        body = _HEADER.pack(_MAGIC, self.txn_id, self.consistent_index, len(boot)) + boot + self.meta_page
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def decode(cls, raw: bytes) -> "Checkpoint":
        if len(raw) < _HEADER.size + _CRC.size or zlib.crc32(raw[:-_CRC.size]) != _CRC.unpack(raw[-_CRC.size:])[0]:
            raise CheckpointError("backend checkpoint file is damaged")
        magic, txn_id, index, boot_len = _HEADER.unpack_from(raw)
        if magic != _MAGIC:
            raise CheckpointError("backend checkpoint file has a wrong magic number")
        boot = raw[_HEADER.size:_HEADER.size + boot_len].decode()
        return cls(txn_id, index, boot, raw[_HEADER.size + boot_len:-_CRC.size])


def read_meta_page(fs: FileSystem, data_path: str, page_size: int, txn_id: int) -> bytes | None:
    """The meta page of transaction ``txn_id`` as the data file holds it now (None: overwritten)."""
    fd = fs.open(data_path, os.O_RDONLY)
    try:
        raw = fs.pread(fd, _META_PAGES * page_size, 0)
    finally:
        fs.close(fd)
    for slot in range(_META_PAGES):
        page = raw[slot * page_size:(slot + 1) * page_size]
        if len(page) == page_size and _TXNID.unpack_from(page, _TXNID_OFFSET)[0] == txn_id:
            return page
    return None


def save(fs: FileSystem, dirpath: str, checkpoint: Checkpoint) -> None:
    write_file_durably(fs, os.path.join(dirpath, FILE_NAME), checkpoint.encode())


def load(fs: FileSystem, dirpath: str) -> Checkpoint | None:
    path = os.path.join(dirpath, FILE_NAME)
    if not fs.exists(path):
        return None
    return Checkpoint.decode(fs.read_file(path))


def discard(fs: FileSystem, dirpath: str) -> None:
    """Before another data file is moved in: the checkpoint would not describe it."""
    path = os.path.join(dirpath, FILE_NAME)
    if fs.exists(path):
        fs.unlink(path)
        fs.fsync_dir(dirpath)


def restore_if_power_lost(fs: FileSystem, dirpath: str) -> Checkpoint | None:
    """If the machine went down since the checkpoint was written, put the data file back to the
    checkpointed state; returns the checkpoint restored, or None."""
    checkpoint = load(fs, dirpath)
    if checkpoint is None or checkpoint.boot_id == fs.boot_id():
        return None
    page = checkpoint.meta_page
    if (_LMDB_MAGIC.unpack_from(page, 16)[0] != _LMDB_MAGIC_VALUE
            or not _PAGE_HEADER_FLAGS.unpack_from(page, 10)[0] & _P_META):
        raise CheckpointError("backend checkpoint does not hold an LMDB meta page")
    fd = fs.open(os.path.join(dirpath, DATA_FILE), os.O_WRONLY)
    try:
        for slot in range(_META_PAGES):
            fs.pwrite(fd, _PGNO.pack(slot) + page[_PGNO.size:], slot * len(page))
        fs.fsync(fd)
    finally:
        fs.close(fd)
    return checkpoint
