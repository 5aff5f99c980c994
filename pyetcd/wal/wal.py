"""The write-ahead log: Raft entries and hard state, durable before anyone hears OK.

API::

    WAL.create(dirpath, metadata, *, segment_size=SEGMENT_SIZE) -> WAL
        A new, empty log in dirpath (made if missing); raises WALError if a log is already there.
    WAL.open(dirpath, *, logger=None, segment_size=SEGMENT_SIZE) -> WAL
        Reads and checks every segment. A torn last record is truncated with logger.warning;
        any other damage raises WALCorruptError naming the file and offset.
    WAL.exists(dirpath) -> bool
    wal.read_all() -> (metadata, HardState, [Entry], SnapshotMarker | None)
        The metadata, the last hard state, the live entries after the last snapshot marker
        (a repeated index overwrites that entry and everything after it) and that marker.
    wal.save(hardstate | None, entries, *, sync=True)
        Appends entries then the hard state in one write, fdatasync when sync. The entries must be
        consecutive and start at most one past the last index (ValueError). Blocking; call it
        from a worker thread, one call at a time. After an I/O error the WAL refuses further
        writes (WALError): the process must restart, and open() repairs the tail.
    wal.save_snapshot(index, term)
        Appends a snapshot marker (synced): entries up to index are in the state machine's snapshot.
    wal.release_before(index)
        Deletes old segments whose live entries are all below index; index <= marker index + 1.
    wal.close()
    Both WAL.create and WAL.open take an exclusive flock on dirpath/LOCK (WALLockedError).

On disk: segments named f"{seq:016x}-{first_index:016x}.wal", seq counting up from 0 without
gaps and first_index the index the segment's first new entry was to have. Every segment starts
with the metadata, the current hard state and the last snapshot marker, so old segments can be
deleted; a new segment is written to a temporary file, fsynced and renamed, so a segment on disk
always has its header. Records are framed by pyetcd.wal.record. Files are never preallocated.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from pyetcd.proto.raftpb import raft_pb2
from pyetcd.wal import record
from pyetcd.wal.record import RecordType, SnapshotMarker

SEGMENT_SIZE = 64 * 1024 * 1024
LOCK_NAME = "LOCK"
_SEGMENT_RE = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")
_TMP_SUFFIX = ".tmp"
_log = logging.getLogger(__name__)

# What read_all returns: metadata, last hard state, live entries after the marker, last snapshot marker.
LogContents = tuple[bytes, raft_pb2.HardState, list[raft_pb2.Entry], SnapshotMarker | None]


class WALError(Exception):
    """The WAL cannot be used as asked."""


class WALCorruptError(WALError):
    """The log is damaged somewhere other than a torn last record."""


class WALLockedError(WALError):
    """Another WAL object (in this or another process) holds the directory."""


@dataclass(frozen=True)
class Segment:
    seq: int
    first_index: int
    path: str


def segment_name(seq: int, first_index: int) -> str:
    return f"{seq:016x}-{first_index:016x}.wal"


def list_segments(dirpath: str) -> list[Segment]:
    """The directory's segments in order; a missing sequence number is corruption."""
    segments = []
    for name in os.listdir(dirpath):
        m = _SEGMENT_RE.match(name)
        if m:
            segments.append(Segment(int(m[1], 16), int(m[2], 16), os.path.join(dirpath, name)))
    segments.sort(key=lambda s: s.seq)
    for prev, seg in zip(segments, segments[1:]):
        if seg.seq != prev.seq + 1:
            raise WALCorruptError(f"wal: segment missing between {prev.path} and {seg.path}")
    return segments


@dataclass
class _Log:
    """What the records say so far, built up record by record in log order."""

    metadata: bytes | None = None
    hardstate: raft_pb2.HardState = field(default_factory=raft_pb2.HardState)
    entries: list[raft_pb2.Entry] = field(default_factory=list)
    snapshot: SnapshotMarker | None = None

    def add(self, rtype: int, payload: memoryview, where: str) -> None:
        try:
            if rtype == RecordType.ENTRY:
                self._add_entry(raft_pb2.Entry.FromString(payload), where)
            elif rtype == RecordType.HARDSTATE:
                self.hardstate = raft_pb2.HardState.FromString(payload)
            elif rtype == RecordType.SNAPSHOT:
                self._add_snapshot(SnapshotMarker.decode(payload))
            elif rtype == RecordType.METADATA:
                if self.metadata is None:
                    self.metadata = bytes(payload)
                elif self.metadata != payload:
                    raise WALCorruptError(f"wal: {where}: metadata differs from the earlier segments'")
            else:
                raise WALCorruptError(f"wal: {where}: unknown record type {rtype}")
        except (DecodeError, ValueError) as exc:
            raise WALCorruptError(f"wal: {where}: undecodable {RecordType(rtype).name} record: {exc}") from exc

    def _add_entry(self, entry: raft_pb2.Entry, where: str) -> None:
        if self.snapshot is not None and entry.index <= self.snapshot.index:
            return
        entries = self.entries
        # Entries are kept contiguous. An empty list (log start, or all trimmed by a snapshot
        # marker, or segments released) restarts anywhere; finish() checks the start.
        if not entries or entry.index < entries[0].index:
            entries[:] = [entry]
        elif entry.index == entries[-1].index + 1:
            entries.append(entry)
        elif entry.index > entries[-1].index:
            raise WALCorruptError(f"wal: {where}: entry {entry.index} follows entry {entries[-1].index}")
        else:  # a Raft follower's log overwritten from this index on
            del entries[entry.index - entries[0].index:]
            entries.append(entry)

    def _add_snapshot(self, marker: SnapshotMarker) -> None:
        self.snapshot = marker
        if self.entries:
            del self.entries[:max(0, marker.index - self.entries[0].index + 1)]

    def finish(self, dirpath: str) -> LogContents:
        if self.metadata is None:
            raise WALCorruptError(f"wal: {dirpath}: no metadata record")
        if self.snapshot is not None and self.entries and self.entries[0].index != self.snapshot.index + 1:
            raise WALCorruptError(
                f"wal: {dirpath}: entries after the snapshot at index {self.snapshot.index} "
                f"start at index {self.entries[0].index}")
        return self.metadata, self.hardstate, self.entries, self.snapshot


def _read_segment(seg: Segment, log: _Log, *, is_last: bool, repair_logger: logging.Logger | None) -> None:
    """Feed seg's records to log; truncate a torn tail of the last segment if a logger is given."""
    with open(seg.path, "rb") as f:
        buf = memoryview(f.read())
    offset = 0
    while offset < len(buf):
        rec = record.decode_at(buf, offset)
        if rec is None:
            break
        rtype, payload, end = rec
        if offset == 0 and rtype != RecordType.METADATA:
            raise WALCorruptError(f"wal: {seg.path}: does not start with a metadata record")
        log.add(rtype, payload, f"{seg.path} offset {offset}")
        offset = end
    if offset == 0:
        raise WALCorruptError(f"wal: {seg.path}: no intact metadata record at offset 0")
    if offset == len(buf):
        return
    where = f"{seg.path}: damaged record at offset {offset}"
    if not is_last:
        raise WALCorruptError(f"wal: {where} in a segment that is not the last")
    following = record.find_record(buf, offset + 1)
    if following is not None:
        raise WALCorruptError(f"wal: {where}, followed by an intact record at offset {following}")
    if repair_logger is None:
        raise WALCorruptError(f"wal: {where} at the end of the log")
    repair_logger.warning("wal: %s: torn last record at offset %d, truncating %d bytes",
                          seg.path, offset, len(buf) - offset)
    with open(seg.path, "r+b") as f:
        f.truncate(offset)
        os.fsync(f.fileno())


def _read_log(dirpath: str, segments: list[Segment], repair_logger: logging.Logger | None) -> LogContents:
    log = _Log()
    for i, seg in enumerate(segments):
        _read_segment(seg, log, is_last=i == len(segments) - 1, repair_logger=repair_logger)
    return log.finish(dirpath)


def _fsync_dir(dirpath: str) -> None:
    fd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _lock(dirpath: str) -> int:
    fd = os.open(os.path.join(dirpath, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WALLockedError(f"wal: {dirpath} is in use by another WAL") from None
    return fd


def _remove_temporary_files(dirpath: str) -> None:
    """Segments whose creation a crash interrupted; they were never part of the log."""
    for name in os.listdir(dirpath):
        if name.endswith(".wal" + _TMP_SUFFIX):
            os.unlink(os.path.join(dirpath, name))


class WAL:
    """An open write-ahead log; see the module docstring."""

    def __init__(self, dirpath: str, lock_fd: int, segments: list[Segment], metadata: bytes,
                 hardstate: raft_pb2.HardState, snapshot: SnapshotMarker | None, last_index: int,
                 segment_size: int, logger: logging.Logger) -> None:
        self._dir = dirpath
        self._lock_fd: int | None = lock_fd
        self._segments = segments
        self._metadata = metadata
        self._hardstate = hardstate.SerializeToString()
        self._snapshot = snapshot
        self._last_index = last_index
        self._segment_size = segment_size
        self._logger = logger
        self._fd = os.open(segments[-1].path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._size = os.fstat(self._fd).st_size
        self._failure: OSError | None = None
        self._recovered: LogContents | None = None

    @staticmethod
    def exists(dirpath: str) -> bool:
        return os.path.isdir(dirpath) and any(_SEGMENT_RE.match(n) for n in os.listdir(dirpath))

    @classmethod
    def create(cls, dirpath: str, metadata: bytes, *, segment_size: int = SEGMENT_SIZE) -> "WAL":
        os.makedirs(dirpath, exist_ok=True)
        _fsync_dir(os.path.dirname(os.path.abspath(dirpath)))
        lock_fd = _lock(dirpath)
        try:
            if cls.exists(dirpath):
                raise WALError(f"wal: {dirpath} already holds a WAL")
            _remove_temporary_files(dirpath)
            hardstate = raft_pb2.HardState()
            first = cls._write_segment(dirpath, 0, 1, metadata, hardstate.SerializeToString(), None)
            return cls(dirpath, lock_fd, [first], metadata, hardstate, None, 0, segment_size, _log)
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def open(cls, dirpath: str, *, logger: logging.Logger | None = None,
             segment_size: int = SEGMENT_SIZE) -> "WAL":
        if not cls.exists(dirpath):
            raise WALError(f"wal: no WAL in {dirpath}")
        logger = logger or _log
        lock_fd = _lock(dirpath)
        try:
            _remove_temporary_files(dirpath)
            segments = list_segments(dirpath)
            recovered = _read_log(dirpath, segments, logger)
            metadata, hardstate, entries, snapshot = recovered
            last_index = max(entries[-1].index if entries else 0, snapshot.index if snapshot else 0)
            wal = cls(dirpath, lock_fd, segments, metadata, hardstate, snapshot, last_index, segment_size, logger)
        except BaseException:
            os.close(lock_fd)
            raise
        wal._recovered = recovered
        return wal

    def read_all(self) -> LogContents:
        recovered, self._recovered = self._recovered, None
        if recovered is not None:  # open() has just read it
            return recovered
        return _read_log(self._dir, self._segments, None)

    def save(self, hardstate: raft_pb2.HardState | None, entries: list[raft_pb2.Entry], *,
             sync: bool = True) -> None:
        if not entries and hardstate is None:
            return
        with self._io():
            if entries and (entries[0].index > self._last_index + 1
                            or entries[-1].index - entries[0].index != len(entries) - 1):
                # The log could not be read back: refuse it now rather than at the next start.
                raise ValueError(f"wal: entries {entries[0].index}..{entries[-1].index} ({len(entries)} of "
                                 f"them) do not continue the log, whose last index is {self._last_index}")
            parts = [record.encode(RecordType.ENTRY, e.SerializeToString()) for e in entries]
            hs = hardstate.SerializeToString() if hardstate is not None else None
            if hs is not None:
                parts.append(record.encode(RecordType.HARDSTATE, hs))
            self._append(b"".join(parts), sync)
            if entries:
                self._last_index = entries[-1].index
            if hs is not None:
                self._hardstate = hs
            if self._size >= self._segment_size:
                self._cut()

    def save_snapshot(self, index: int, term: int) -> None:
        marker = SnapshotMarker(index, term)
        with self._io():
            self._append(record.encode(RecordType.SNAPSHOT, marker.encode()), True)
            self._snapshot = marker
            self._last_index = max(self._last_index, index)
            if self._size >= self._segment_size:
                self._cut()

    def release_before(self, index: int) -> None:
        if self._snapshot is None or index > self._snapshot.index + 1:
            raise ValueError(f"wal: cannot release entries before {index}: the last snapshot marker is "
                             f"{self._snapshot}, entries after it must stay")
        released = 0
        # A segment's live entries are all below the next segment's first_index.
        while released < len(self._segments) - 1 and self._segments[released + 1].first_index <= index:
            os.unlink(self._segments[released].path)
            released += 1
        if released:
            del self._segments[:released]
            _fsync_dir(self._dir)

    def close(self) -> None:
        if self._lock_fd is None:
            return
        try:
            if self._failure is None:
                os.fdatasync(self._fd)
        finally:
            os.close(self._fd)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "WAL":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _io(self) -> Iterator[None]:
        """Writes after a failed write or fsync could leave a hole or be lost silently: refuse them."""
        if self._lock_fd is None:
            raise WALError("wal: closed")
        if self._failure is not None:
            raise WALError(f"wal: unusable after an earlier I/O error: {self._failure}")
        try:
            yield
        except OSError as exc:
            self._failure = exc
            raise

    def _append(self, data: bytes, sync: bool) -> None:
        _write_all(self._fd, data)
        self._size += len(data)
        if sync:
            os.fdatasync(self._fd)

    def _cut(self) -> None:
        os.fdatasync(self._fd)  # a segment that is not the last must be complete on disk
        seg = self._write_segment(self._dir, self._segments[-1].seq + 1, self._last_index + 1,
                                  self._metadata, self._hardstate, self._snapshot)
        os.close(self._fd)
        self._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._size = os.fstat(self._fd).st_size
        self._segments.append(seg)

    @staticmethod
    def _write_segment(dirpath: str, seq: int, first_index: int, metadata: bytes, hardstate: bytes,
                       snapshot: SnapshotMarker | None) -> Segment:
        header = [record.encode(RecordType.METADATA, metadata), record.encode(RecordType.HARDSTATE, hardstate)]
        if snapshot is not None:
            header.append(record.encode(RecordType.SNAPSHOT, snapshot.encode()))
        path = os.path.join(dirpath, segment_name(seq, first_index))
        fd = os.open(path + _TMP_SUFFIX, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, b"".join(header))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(path + _TMP_SUFFIX, path)
        _fsync_dir(dirpath)
        return Segment(seq, first_index, path)
