"""The write-ahead log: Raft entries and hard state, durable before anyone hears OK.

API::

    WAL.create(dirpath, metadata, *, segment_size=SEGMENT_SIZE, fs=OS) -> WAL
        A new, empty log in dirpath (made if missing); raises WALError if a log is already there.
    WAL.open(dirpath, *, logger=None, segment_size=SEGMENT_SIZE, fs=OS) -> WAL
        Reads and checks every segment. A torn last record (see below) is truncated with
        logger.warning; any other damage raises WALCorruptError naming the file and offset.
    WAL.exists(dirpath, fs=OS) -> bool
    wal.read_all() -> (metadata, HardState, [Entry], SnapshotMarker | None)
        The metadata, the last hard state, the live entries after the last snapshot marker
        (a repeated index overwrites that entry and everything after it) and that marker.
    wal.save(hardstate | None, entries, *, sync=True)
        Appends entries then the hard state in one write, fdatasync when sync. The entries must be
        consecutive and start at most one past the last index (ValueError). Blocking; call it
        from a worker thread, one call at a time. After an I/O error the WAL refuses further
        writes and releases (WALError): the process must restart, and open() repairs the tail.
    wal.save_snapshot(index, term, *, discard_log=False)
        Appends a snapshot marker (synced): entries up to index are in the state machine's snapshot.
        With discard_log (a snapshot received from the leader, which replaces the log) every entry
        written before the marker is discarded, whatever its index, and the last index becomes
        index: the next save may start at index + 1. Without it (the member's own snapshot of what
        it applied) entries above index stay.
    wal.release_before(index)
        Deletes old segments whose live entries are all below index; index <= marker index + 1.
    wal.close()
    Both WAL.create and WAL.open take an exclusive lock on dirpath/LOCK (WALLockedError).

Every file operation goes through fs (pyetcd.fileutil.FileSystem), and correctness rests only on
what is synced: a new segment is written to a temporary file, fsynced, renamed and the directory
fsynced, so a segment on disk always has its header; appends are fdatasynced when sync; release
fsyncs the directory after deleting.

On disk: segments named f"{seq:016x}-{first_index:016x}.wal", seq counting up from 0 without
gaps and first_index the last index + 1 when the segment was cut (so all live entries of a segment
are below the next segment's first_index; after a discarding marker first_index can go down).
Every segment starts with the metadata, the current hard state and the last snapshot marker, so
old segments can be deleted; the header repeats the marker as a plain SNAPSHOT record, since what
a discarding marker discarded lies before it. Records are framed by pyetcd.wal.record: METADATA,
ENTRY, HARDSTATE, SNAPSHOT (a marker) and SNAPSHOT_RESET (a discarding marker, same payload).
Files are never preallocated.

A damaged record in the last segment with no intact record after it is a torn write, and
truncated, only if it is what an interrupted append leaves: a record (its magic byte first) cut
short, with fewer bytes left than its header or than its header's length; or zero fill, all zeros
from its offset to the end of the file or a full-length record holding a whole 512-byte-aligned
sector of zeros (the file grew, that sector's data never reached the disk). Anything else, a
full-length record failing its CRC or bytes that start neither a record nor zero fill, is
corruption.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from pyetcd.fileutil import OS, FileSystem, makedirs_durably, write_all
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


def list_segments(dirpath: str, fs: FileSystem = OS) -> list[Segment]:
    """The directory's segments in order; a missing sequence number is corruption."""
    segments = []
    for name in fs.listdir(dirpath):
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
            elif rtype in (RecordType.SNAPSHOT, RecordType.SNAPSHOT_RESET):
                self._add_snapshot(SnapshotMarker.decode(payload), rtype == RecordType.SNAPSHOT_RESET)
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
        # Entries are kept contiguous. An empty list (log start, or all trimmed or discarded by a
        # snapshot marker, or segments released) restarts anywhere; finish() checks the start.
        if not entries or entry.index < entries[0].index:
            entries[:] = [entry]
        elif entry.index == entries[-1].index + 1:
            entries.append(entry)
        elif entry.index > entries[-1].index:
            raise WALCorruptError(f"wal: {where}: entry {entry.index} follows entry {entries[-1].index}")
        else:  # a Raft follower's log overwritten from this index on
            del entries[entry.index - entries[0].index:]
            entries.append(entry)

    def _add_snapshot(self, marker: SnapshotMarker, discard_log: bool) -> None:
        self.snapshot = marker
        if discard_log:
            self.entries.clear()
        elif self.entries:
            del self.entries[:max(0, marker.index - self.entries[0].index + 1)]

    def finish(self, dirpath: str) -> LogContents:
        if self.metadata is None:
            raise WALCorruptError(f"wal: {dirpath}: no metadata record")
        if self.snapshot is not None and self.entries and self.entries[0].index != self.snapshot.index + 1:
            raise WALCorruptError(
                f"wal: {dirpath}: entries after the snapshot at index {self.snapshot.index} "
                f"start at index {self.entries[0].index}")
        return self.metadata, self.hardstate, self.entries, self.snapshot


def _read_segment(fs: FileSystem, seg: Segment, log: _Log, *, is_last: bool,
                  repair_logger: logging.Logger | None) -> None:
    """Feed seg's records to log; truncate a torn tail of the last segment if a logger is given."""
    buf = memoryview(fs.read_file(seg.path))
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
    if not record.is_torn(buf, offset):
        raise WALCorruptError(f"wal: {where} at the end of the log is not a torn write (neither cut short "
                              "nor zero-filled); refusing to truncate it")
    if repair_logger is None:
        raise WALCorruptError(f"wal: {where} at the end of the log")
    repair_logger.warning("wal: %s: torn last record at offset %d, truncating %d bytes",
                          seg.path, offset, len(buf) - offset)
    fd = fs.open(seg.path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        fs.ftruncate(fd, offset)
        fs.fsync(fd)
    finally:
        fs.close(fd)


def _read_log(fs: FileSystem, dirpath: str, segments: list[Segment],
              repair_logger: logging.Logger | None) -> LogContents:
    log = _Log()
    for i, seg in enumerate(segments):
        _read_segment(fs, seg, log, is_last=i == len(segments) - 1, repair_logger=repair_logger)
    return log.finish(dirpath)


def _lock(fs: FileSystem, dirpath: str) -> int:
    fd = fs.open(os.path.join(dirpath, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fs.lock(fd)
    except BlockingIOError:
        fs.close(fd)
        raise WALLockedError(f"wal: {dirpath} is in use by another WAL") from None
    return fd


def _remove_temporary_files(fs: FileSystem, dirpath: str) -> None:
    """Segments whose creation a crash interrupted; they were never part of the log."""
    for name in fs.listdir(dirpath):
        if name.endswith(".wal" + _TMP_SUFFIX):
            fs.unlink(os.path.join(dirpath, name))


class WAL:
    """An open write-ahead log; see the module docstring."""

    def __init__(self, fs: FileSystem, dirpath: str, lock_fd: int, segments: list[Segment], metadata: bytes,
                 hardstate: raft_pb2.HardState, snapshot: SnapshotMarker | None, last_index: int,
                 segment_size: int, logger: logging.Logger) -> None:
        self._fs = fs
        self._dir = dirpath
        self._lock_fd: int | None = lock_fd
        self._segments = segments
        self._metadata = metadata
        self._hardstate = hardstate.SerializeToString()
        self._snapshot = snapshot
        self._last_index = last_index
        self._segment_size = segment_size
        self._logger = logger
        self._fd = fs.open(segments[-1].path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._size = fs.fsize(self._fd)
        self.on_fsync: Callable[[float], None] | None = None  # (seconds each fsync took: a metric)
        self._failure: OSError | None = None
        self._recovered: LogContents | None = None

    @staticmethod
    def exists(dirpath: str, fs: FileSystem = OS) -> bool:
        return fs.isdir(dirpath) and any(_SEGMENT_RE.match(n) for n in fs.listdir(dirpath))

    @classmethod
    def create(cls, dirpath: str, metadata: bytes, *, segment_size: int = SEGMENT_SIZE,
               fs: FileSystem = OS) -> "WAL":
        makedirs_durably(fs, dirpath)
        lock_fd = _lock(fs, dirpath)
        try:
            if cls.exists(dirpath, fs):
                raise WALError(f"wal: {dirpath} already holds a WAL")
            _remove_temporary_files(fs, dirpath)
            hardstate = raft_pb2.HardState()
            first = cls._write_segment(fs, dirpath, 0, 1, metadata, hardstate.SerializeToString(), None)
            return cls(fs, dirpath, lock_fd, [first], metadata, hardstate, None, 0, segment_size, _log)
        except BaseException:
            fs.close(lock_fd)
            raise

    @classmethod
    def open(cls, dirpath: str, *, logger: logging.Logger | None = None, segment_size: int = SEGMENT_SIZE,
             fs: FileSystem = OS) -> "WAL":
        if not cls.exists(dirpath, fs):
            raise WALError(f"wal: no WAL in {dirpath}")
        logger = logger or _log
        lock_fd = _lock(fs, dirpath)
        try:
            _remove_temporary_files(fs, dirpath)
            segments = list_segments(dirpath, fs)
            recovered = _read_log(fs, dirpath, segments, logger)
            metadata, hardstate, entries, snapshot = recovered
            last_index = max(entries[-1].index if entries else 0, snapshot.index if snapshot else 0)
            wal = cls(fs, dirpath, lock_fd, segments, metadata, hardstate, snapshot, last_index,
                      segment_size, logger)
            # What a restart read may be only in the page cache (the process died before an
            # fdatasync): make it durable before the member acts on it (sim F14: a restart
            # finished a snapshot install from an unsynced WAL marker; a power loss then took
            # the marker back and left the database ahead of the WAL). Earlier segments were
            # synced when they were cut. The directory too: a process that died between a
            # segment's rename and the directory's fsync left a name a power loss takes back
            # (sim F15: the WAL of a joined member vanished, which then restarted empty).
            fs.fdatasync(wal._fd)
            fs.fsync_dir(dirpath)
        except BaseException:
            fs.close(lock_fd)
            raise
        wal._recovered = recovered
        return wal

    def read_all(self) -> LogContents:
        recovered, self._recovered = self._recovered, None
        if recovered is not None:  # open() has just read it
            return recovered
        return _read_log(self._fs, self._dir, self._segments, None)

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

    def save_snapshot(self, index: int, term: int, *, discard_log: bool = False) -> None:
        marker = SnapshotMarker(index, term)
        rtype = RecordType.SNAPSHOT_RESET if discard_log else RecordType.SNAPSHOT
        with self._io():
            self._append(record.encode(rtype, marker.encode()), True)
            self._snapshot = marker
            self._last_index = index if discard_log else max(self._last_index, index)
            if self._size >= self._segment_size:
                self._cut()

    def release_before(self, index: int) -> None:
        if self._snapshot is None or index > self._snapshot.index + 1:
            raise ValueError(f"wal: cannot release entries before {index}: the last snapshot marker is "
                             f"{self._snapshot}, entries after it must stay")
        with self._io():
            released = False
            # A segment's live entries are all below the next segment's first_index.
            while len(self._segments) > 1 and self._segments[1].first_index <= index:
                self._fs.unlink(self._segments[0].path)
                del self._segments[0]
                released = True
            if released:
                self._fs.fsync_dir(self._dir)

    def close(self) -> None:
        if self._lock_fd is None:
            return
        try:
            if self._failure is None:
                self._fs.fdatasync(self._fd)
        finally:
            self._fs.close(self._fd)
            self._fs.close(self._lock_fd)
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
        self._recovered = None  # what open() read is not the log any more
        try:
            yield
        except OSError as exc:
            self._failure = exc
            raise

    def _append(self, data: bytes, sync: bool) -> None:
        write_all(self._fs, self._fd, data)
        self._size += len(data)
        if sync:
            start = time.monotonic()
            self._fs.fdatasync(self._fd)
            if self.on_fsync is not None:
                self.on_fsync(time.monotonic() - start)

    def _cut(self) -> None:
        fs = self._fs
        fs.fdatasync(self._fd)  # a segment that is not the last must be complete on disk
        seg = self._write_segment(fs, self._dir, self._segments[-1].seq + 1, self._last_index + 1,
                                  self._metadata, self._hardstate, self._snapshot)
        fs.close(self._fd)
        self._fd = fs.open(seg.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._size = fs.fsize(self._fd)
        self._segments.append(seg)

    @staticmethod
    def _write_segment(fs: FileSystem, dirpath: str, seq: int, first_index: int, metadata: bytes,
                       hardstate: bytes, snapshot: SnapshotMarker | None) -> Segment:
        header = [record.encode(RecordType.METADATA, metadata), record.encode(RecordType.HARDSTATE, hardstate)]
        if snapshot is not None:  # plain even after a discarding marker: what it discarded lies before it
            header.append(record.encode(RecordType.SNAPSHOT, snapshot.encode()))
        path = os.path.join(dirpath, segment_name(seq, first_index))
        fd = fs.open(path + _TMP_SUFFIX, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            write_all(fs, fd, b"".join(header))
            fs.fsync(fd)
        finally:
            fs.close(fd)
        fs.rename(path + _TMP_SUFFIX, path)
        fs.fsync_dir(dirpath)
        return Segment(seq, first_index, path)
