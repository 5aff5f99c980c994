"""WAL records: framing, checksums and the search for a valid record.

A record is a 10-byte header followed by its payload::

    magic  u8   0xE7, so zero fill and most garbage are recognised at once
    type   u8   a RecordType
    length u32  payload length (little endian)
    crc    u32  zlib.crc32 over the first 6 header bytes and the payload

The CRC covers the type and the length as well, so a damaged header is a CRC mismatch. CRCs are
not chained from record to record: a damaged record then leaves the records after it verifiable,
which is what tells damage in the middle of the log (a valid record follows) from the end.
A damaged last record is a torn write only if it looks like what an interrupted append leaves
(see is_torn); any other damage, a flipped bit in a full-length record say, is corruption.
"""
from __future__ import annotations

import enum
import re
import struct
import zlib
from dataclasses import dataclass

MAGIC = 0xE7
HEADER = struct.Struct("<BBII")
_PREFIX = struct.Struct("<BBI")  # the header bytes the CRC covers
_MAGIC_RE = re.compile(bytes([MAGIC]))
SECTOR = 512  # the unit a disk writes atomically, at least
_ZERO_SECTOR = bytes(SECTOR)


class RecordType(enum.IntEnum):
    METADATA = 1  # opaque bytes given to WAL.create; first record of every segment
    ENTRY = 2  # a serialized raftpb.Entry
    HARDSTATE = 3  # a serialized raftpb.HardState
    SNAPSHOT = 4  # a SnapshotMarker
    SNAPSHOT_RESET = 5  # a SnapshotMarker of a snapshot received from the leader: discards the log before it


@dataclass(frozen=True)
class SnapshotMarker:
    """The state machine was snapshotted at (index, term); log entries up to index are in it."""

    index: int
    term: int

    _STRUCT = struct.Struct("<QQ")

    def encode(self) -> bytes:
        return self._STRUCT.pack(self.index, self.term)

    @classmethod
    def decode(cls, payload: bytes | memoryview) -> "SnapshotMarker":
        if len(payload) != cls._STRUCT.size:
            raise ValueError(f"snapshot marker payload has {len(payload)} bytes, want {cls._STRUCT.size}")
        return cls(*cls._STRUCT.unpack(payload))


def encode(rtype: int, payload: bytes) -> bytes:
    """Frame one record."""
    n = len(payload)
    return HEADER.pack(MAGIC, rtype, n, zlib.crc32(payload, zlib.crc32(_PREFIX.pack(MAGIC, rtype, n)))) + payload


def decode_at(buf: memoryview, offset: int) -> tuple[int, memoryview, int] | None:
    """The record at offset as (type, payload, end offset), or None if no intact record starts there.

    The type is returned as stored, known or not: an intact record of an unknown type is the
    caller's decision.
    """
    end_of_header = offset + HEADER.size
    if end_of_header > len(buf):
        return None
    magic, rtype, length, crc = HEADER.unpack_from(buf, offset)
    end = end_of_header + length
    if magic != MAGIC or end > len(buf):
        return None
    payload = buf[end_of_header:end]
    if zlib.crc32(payload, zlib.crc32(buf[offset:offset + _PREFIX.size])) != crc:
        return None
    return rtype, payload, end


def find_record(buf: memoryview, start: int) -> int | None:
    """Offset of the first intact record at or after start, or None."""
    for match in _MAGIC_RE.finditer(buf, start):
        if decode_at(buf, match.start()) is not None:
            return match.start()
    return None


def is_torn(buf: memoryview, offset: int) -> bool:
    """Whether the damaged record at offset, with no intact record after it, is a torn write.

    An interrupted append leaves a prefix of the record (cut short of its header, or of the length
    its header gives) or zeros where the file grew but the data never reached the disk: every byte
    from offset on, or a whole sector inside a full-length record.
    """
    tail = buf[offset:]
    if tail == bytes(len(tail)):
        return True
    if tail[0] != MAGIC:  # not the start of a record, nor zero fill
        return False
    if len(tail) < HEADER.size:
        return True
    end = offset + HEADER.size + HEADER.unpack_from(buf, offset)[2]
    if end > len(buf):
        return True
    first = -(-offset // SECTOR) * SECTOR
    return any(buf[s:s + SECTOR] == _ZERO_SECTOR for s in range(first, end - SECTOR + 1, SECTOR))
