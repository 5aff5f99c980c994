"""pyetcd.wal: round trips, segments, follower overwrites, snapshot markers (discarding ones too),
torn-tail repair and what is not a torn tail, corruption, release, lock, I/O errors."""
from __future__ import annotations

import errno
import logging
import os

import pytest

from pyetcd.fileutil import OS
from pyetcd.proto.raftpb import raft_pb2
from pyetcd.wal import WAL, SnapshotMarker, WALCorruptError, WALError, WALLockedError
from pyetcd.wal import record
from pyetcd.wal.wal import list_segments, segment_name

META = b"member=1 cluster=2"


def ent(index: int, term: int = 1) -> raft_pb2.Entry:
    return raft_pb2.Entry(term=term, index=index, data=b"data-%d-" % index * 3)


def hs(term: int, commit: int, vote: int = 0) -> raft_pb2.HardState:
    return raft_pb2.HardState(term=term, vote=vote, commit=commit)


def indexes(entries: list[raft_pb2.Entry]) -> list[int]:
    return [e.index for e in entries]


def reopen(path: str, logger: logging.Logger | None = None, **kwargs):
    with WAL.open(path, logger=logger, **kwargs) as w:
        return w.read_all()


@pytest.fixture
def waldir(tmp_path) -> str:
    return str(tmp_path / "wal")


def test_new_log_is_empty(waldir):
    assert not WAL.exists(waldir)
    with WAL.create(waldir, META) as w:
        assert w.read_all() == (META, raft_pb2.HardState(), [], None)
    assert WAL.exists(waldir)
    assert reopen(waldir) == (META, raft_pb2.HardState(), [], None)


def test_round_trip(waldir):
    with WAL.create(waldir, META) as w:
        w.save(hs(1, 0, vote=1), [ent(1), ent(2)])
        w.save(None, [ent(3)])
        w.save(hs(2, 3, vote=2), [])
        w.save(None, [ent(4, term=2)], sync=False)
        live = w.read_all()
    expected = (META, hs(2, 3, vote=2), [ent(1), ent(2), ent(3), ent(4, term=2)], None)
    assert live == expected
    assert reopen(waldir) == expected


def test_many_entries_across_segments(waldir):
    with WAL.create(waldir, META, segment_size=1024) as w:
        index = commit = 0
        for batch in range(100):
            size = batch % 7 + 1
            commit = index
            w.save(hs(1, commit), [ent(i) for i in range(index + 1, index + size + 1)])
            index += size
    segments = list_segments(waldir)
    assert len(segments) > 10
    assert [s.seq for s in segments] == list(range(len(segments)))
    meta, state, entries, snap = reopen(waldir)
    assert meta == META and snap is None
    assert state == hs(1, commit)
    assert entries == [ent(i) for i in range(1, index + 1)]


def test_reopen_and_append(waldir):
    with WAL.create(waldir, META, segment_size=2048) as w:
        w.save(hs(1, 5), [ent(i) for i in range(1, 11)])
    with WAL.open(waldir, segment_size=2048) as w:
        assert indexes(w.read_all()[2]) == list(range(1, 11))
        w.save(hs(1, 15), [ent(i) for i in range(11, 31)])
        assert indexes(w.read_all()[2]) == list(range(1, 31))  # a second read_all reads the disk again
    meta, state, entries, _ = reopen(waldir)
    assert state == hs(1, 15)
    assert entries == [ent(i) for i in range(1, 31)]


def test_overwritten_indexes_truncate_what_followed(waldir):
    with WAL.create(waldir, META, segment_size=1024) as w:
        w.save(None, [ent(i) for i in range(1, 41)])
        w.save(hs(2, 10), [ent(15, term=2), ent(16, term=2)])
        w.save(None, [ent(17, term=2)])
        w.save(None, [ent(17, term=3)])
        live = w.read_all()[2]
    expected = [ent(i) for i in range(1, 15)] + [ent(15, 2), ent(16, 2), ent(17, 3)]
    assert live == expected
    assert reopen(waldir)[2] == expected
    assert len(list_segments(waldir)) > 1  # the overwrite reached back across a segment boundary


def test_snapshot_marker_drops_entries_up_to_its_index(waldir):
    with WAL.create(waldir, META) as w:
        w.save(None, [ent(i) for i in range(1, 11)])
        w.save_snapshot(5, 1)
        assert w.read_all()[2:] == ([ent(i) for i in range(6, 11)], SnapshotMarker(5, 1))
        w.save_snapshot(20, 3)  # a follower given a snapshot beyond its log
        assert w.read_all()[2:] == ([], SnapshotMarker(20, 3))
        w.save(None, [ent(21, 3)])
    assert reopen(waldir)[2:] == ([ent(21, 3)], SnapshotMarker(20, 3))


def test_own_snapshot_keeps_the_entries_above_it(waldir):
    with WAL.create(waldir, META) as w:
        w.save(None, [ent(i) for i in range(1, 11)])
        w.save_snapshot(5, 1, discard_log=False)
        with pytest.raises(ValueError):  # the last index is still 10
            w.save(None, [ent(12)])
        w.save(None, [ent(11)])
    assert reopen(waldir)[2:] == ([ent(i) for i in range(6, 12)], SnapshotMarker(5, 1))


def test_received_snapshot_discards_the_log_above_its_index(waldir):
    """A follower's uncommitted 13..15@3 must not come back after the leader's snapshot at 12@5
    replaced its log: the terms would run backwards and the member would grant votes it must refuse."""
    with WAL.create(waldir, META) as w:
        w.save(hs(3, 12, vote=3), [ent(i, 2) for i in range(1, 13)] + [ent(i, 3) for i in range(13, 16)])
        w.save_snapshot(12, 5, discard_log=True)
        w.save(hs(5, 12), [])
        assert w.read_all()[1:] == (hs(5, 12), [], SnapshotMarker(12, 5))
        with pytest.raises(ValueError):  # the last index is 12 now, not 15
            w.save(None, [ent(14, 5)])
    assert reopen(waldir)[1:] == (hs(5, 12), [], SnapshotMarker(12, 5))
    with WAL.open(waldir) as w:
        with pytest.raises(ValueError):
            w.save(None, [ent(14, 5)])
        w.save(hs(5, 13), [ent(13, 5)])
    assert reopen(waldir)[1:] == (hs(5, 13), [ent(13, 5)], SnapshotMarker(12, 5))


def test_received_snapshot_discards_entries_below_its_index_too(waldir):
    with WAL.create(waldir, META) as w:
        w.save(None, [ent(i) for i in range(1, 6)])
        w.save_snapshot(20, 3, discard_log=True)
        w.save(None, [ent(21, 3)])
    assert reopen(waldir)[2:] == ([ent(21, 3)], SnapshotMarker(20, 3))


def test_discarding_marker_then_cuts_restarts_and_releases(waldir):
    size = 600
    with WAL.create(waldir, META, segment_size=size) as w:
        for i in range(1, 25):
            w.save(hs(3, 0), [ent(i, 3)])
        marker_segment = list_segments(waldir)[-1]
        assert marker_segment.first_index > 13  # named for an index above the marker's
        w.save_snapshot(12, 5, discard_log=True)
        w.release_before(13)  # only segments wholly below 13: the marker's segment stays
        for i in range(13, 31):
            w.save(hs(5, i - 1), [ent(i, 5)])
        segments = list_segments(waldir)
        assert segments[0].seq > 0 and marker_segment in segments
        later = segments[segments.index(marker_segment) + 1:]
        assert later and later[0].first_index < marker_segment.first_index  # cut after the marker
        expected = (META, hs(5, 29), [ent(i, 5) for i in range(13, 31)], SnapshotMarker(12, 5))
        assert w.read_all() == expected
    assert reopen(waldir, segment_size=size) == expected
    with WAL.open(waldir, segment_size=size) as w:
        w.save_snapshot(25, 5)
        w.release_before(26)
        assert marker_segment not in list_segments(waldir)
        expected = (META, hs(5, 29), [ent(i, 5) for i in range(26, 31)], SnapshotMarker(25, 5))
        assert w.read_all() == expected
    assert reopen(waldir, segment_size=size) == expected


def test_a_log_without_discarding_markers_still_reads(waldir):
    """The record types 1-4 as written before SNAPSHOT_RESET existed."""
    os.makedirs(waldir)
    records = [(1, META), (3, hs(1, 0).SerializeToString())]
    records += [(2, ent(i).SerializeToString()) for i in range(1, 7)] + [(4, SnapshotMarker(3, 1).encode())]
    with open(os.path.join(waldir, segment_name(0, 1)), "wb") as f:
        f.write(b"".join(record.encode(t, p) for t, p in records))
    assert reopen(waldir) == (META, hs(1, 0), [ent(4), ent(5), ent(6)], SnapshotMarker(3, 1))


def test_release_before_deletes_old_segments(waldir):
    with WAL.create(waldir, META, segment_size=1024) as w:
        w.save(hs(1, 100, vote=1), [ent(i) for i in range(1, 61)])
        w.save_snapshot(30, 1)  # repeated in the headers of the segments cut from here on
        for i in range(61, 101):
            w.save(None, [ent(i)])
        before = list_segments(waldir)
        w.save_snapshot(70, 1)
        with pytest.raises(ValueError):
            w.release_before(72)
        w.release_before(71)
        after = list_segments(waldir)
        assert len(after) < len(before) and after[0].seq > 0
        assert 31 < after[0].first_index <= 71  # its header's marker (30) is not the last one
        assert w.read_all() == (META, hs(1, 100, vote=1), [ent(i) for i in range(71, 101)], SnapshotMarker(70, 1))
    assert reopen(waldir) == (META, hs(1, 100, vote=1), [ent(i) for i in range(71, 101)], SnapshotMarker(70, 1))


def test_release_keeps_entries_overwritten_after_a_cut(waldir):
    """A follower overwrite reaching below a segment's first_index, then a snapshot and a release."""
    with WAL.create(waldir, META, segment_size=600) as w:
        for i in range(1, 31):
            w.save(None, [ent(i)])
        for i in range(20, 41):
            w.save(None, [ent(i, term=2)])
        w.save_snapshot(25, 2)
        w.release_before(26)
        live = w.read_all()
    expected = (META, raft_pb2.HardState(), [ent(i, 2) for i in range(26, 41)], SnapshotMarker(25, 2))
    assert live == expected
    assert reopen(waldir) == expected


def write_log(waldir: str, n: int = 5) -> tuple[str, int, int]:
    """A log whose last record is entry n, written alone; returns (segment path, its start, its end)."""
    with WAL.create(waldir, META) as w:
        w.save(hs(1, n - 2), [ent(i) for i in range(1, n)])
        path = list_segments(waldir)[-1].path
        start = os.path.getsize(path)
        w.save(None, [ent(n)])
    return path, start, os.path.getsize(path)


LAST_RECORD_LEN = record.HEADER.size + ent(5).ByteSize()


def torn_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "torn" in r.getMessage()]


@pytest.mark.parametrize("kept", range(LAST_RECORD_LEN))
def test_torn_tail_at_every_offset_is_truncated(waldir, caplog, kept):
    path, start, end = write_log(waldir)
    assert end - start == LAST_RECORD_LEN
    os.truncate(path, start + kept)
    logger = logging.getLogger("test.wal")
    with caplog.at_level(logging.WARNING, logger="test.wal"):
        with WAL.open(waldir, logger=logger) as w:
            assert w.read_all()[1:] == (hs(1, 3), [ent(i) for i in range(1, 5)], None)
            w.save(None, [ent(5, term=2)])
    warnings = torn_warnings(caplog)
    if kept:
        assert len(warnings) == 1
        assert path in warnings[0] and f"offset {start}" in warnings[0] and f"{kept} bytes" in warnings[0]
    else:
        assert warnings == []
    assert reopen(waldir)[2] == [ent(i) for i in range(1, 5)] + [ent(5, term=2)]


def flip_bit(path: str, offset: int, bit: int = 0) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))


@pytest.mark.parametrize("pos", range(LAST_RECORD_LEN))
def test_flipped_bit_in_last_record_is_refused(waldir, caplog, pos):
    path, start, end = write_log(waldir)
    with open(path, "rb") as f:
        f.seek(start + pos)
        was_set = f.read(1)[0] >> (pos % 8) & 1
    flip_bit(path, start + pos, bit=pos % 8)
    if 2 <= pos < 6 and not was_set:
        # The length field now says more than the file holds: as far as anyone can tell, cut short.
        with caplog.at_level(logging.WARNING, logger="pyetcd.wal.wal"):
            assert reopen(waldir)[2] == [ent(i) for i in range(1, 5)]
        assert len(torn_warnings(caplog)) == 1
        assert os.path.getsize(path) == start
        return
    with pytest.raises(WALCorruptError, match="not a torn write") as exc:
        WAL.open(waldir)
    assert f"{path}: damaged record at offset {start}" in str(exc.value)
    assert os.path.getsize(path) == end


@pytest.mark.parametrize("pos", range(0, LAST_RECORD_LEN, 3))
def test_flipped_bit_in_a_middle_record_is_corruption(waldir, pos):
    path, start, end = write_log(waldir)
    middle = start - LAST_RECORD_LEN - record.HEADER.size - hs(1, 3).ByteSize()  # entry 4, before the hard state
    flip_bit(path, middle + pos, bit=pos % 8)
    size = os.path.getsize(path)
    with pytest.raises(WALCorruptError) as exc:
        WAL.open(waldir)
    assert path in str(exc.value) and f"offset {middle}" in str(exc.value)
    assert os.path.getsize(path) == size  # nothing was "repaired"


def test_trailing_zeros_are_a_torn_tail(waldir, caplog):
    path, start, end = write_log(waldir)
    with open(path, "ab") as f:
        f.write(bytes(4096))
    with caplog.at_level(logging.WARNING, logger="pyetcd.wal.wal"):
        assert indexes(reopen(waldir)[2]) == [1, 2, 3, 4, 5]
    assert len(torn_warnings(caplog)) == 1
    assert os.path.getsize(path) == end


def write_log_ending_in_a_big_record(waldir: str, then: list[raft_pb2.Entry] = ()) -> tuple[str, int, int]:
    """Entries 1-4, entry 5 of several sectors, then the entries in then; (path, start, end) of entry 5."""
    with WAL.create(waldir, META) as w:
        w.save(hs(1, 2), [ent(i) for i in range(1, 5)])
        path = list_segments(waldir)[-1].path
        start = os.path.getsize(path)
        w.save(None, [raft_pb2.Entry(term=1, index=5, data=b"\x01" * 3000)])
        end = os.path.getsize(path)
        w.save(None, list(then))
    return path, start, end


def zero(path: str, start: int, stop: int) -> None:
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(bytes(stop - start))


def whole_sectors(start: int, end: int) -> list[int]:
    return list(range(-(-start // 512) * 512, end - 511, 512))


@pytest.mark.parametrize("which", [0, -1])
def test_zeroed_sector_in_last_record_is_a_torn_tail(waldir, caplog, which):
    path, start, end = write_log_ending_in_a_big_record(waldir)
    sector = whole_sectors(start, end)[which]
    zero(path, sector, sector + 512)
    with caplog.at_level(logging.WARNING, logger="pyetcd.wal.wal"):
        assert indexes(reopen(waldir)[2]) == [1, 2, 3, 4]
    assert len(torn_warnings(caplog)) == 1
    assert os.path.getsize(path) == start


@pytest.mark.parametrize("shift", [0, 1])
def test_zeros_short_of_a_whole_sector_are_corruption(waldir, shift):
    path, start, end = write_log_ending_in_a_big_record(waldir)
    sector = whole_sectors(start, end)[0]
    zero(path, sector + shift, sector + shift + 511)
    with pytest.raises(WALCorruptError, match=f"offset {start} at the end of the log is not a torn write"):
        WAL.open(waldir)
    assert os.path.getsize(path) == end


def test_last_record_zeroed_to_the_end_is_a_torn_tail(waldir, caplog):
    path, start, end = write_log(waldir)
    zero(path, start, end)
    with caplog.at_level(logging.WARNING, logger="pyetcd.wal.wal"):
        assert indexes(reopen(waldir)[2]) == [1, 2, 3, 4]
    assert len(torn_warnings(caplog)) == 1
    assert os.path.getsize(path) == start


def test_zeroed_sector_before_an_intact_record_is_corruption(waldir):
    path, start, end = write_log_ending_in_a_big_record(waldir, then=[ent(6)])
    sector = whole_sectors(start, end)[0]
    zero(path, sector, sector + 512)
    expected = f"offset {start}, followed by an intact record at offset {end}"
    with pytest.raises(WALCorruptError, match=expected):
        WAL.open(waldir)


def test_garbage_after_the_last_record_is_corruption(waldir):
    path, start, end = write_log(waldir)
    with open(path, "ab") as f:
        f.write(b"garbage")  # shorter than a header, but not the start of one
    with pytest.raises(WALCorruptError, match=f"offset {end} at the end of the log is not a torn write"):
        WAL.open(waldir)


def test_damage_in_a_segment_that_is_not_the_last_is_corruption(waldir):
    with WAL.create(waldir, META, segment_size=512) as w:
        for i in range(1, 30):
            w.save(None, [ent(i)])
    first = list_segments(waldir)[0].path
    os.truncate(first, os.path.getsize(first) - 1)
    with pytest.raises(WALCorruptError, match="not the last"):
        WAL.open(waldir)


def test_unknown_record_type_is_corruption(waldir):
    path, start, end = write_log(waldir)
    with open(path, "ab") as f:
        f.write(record.encode(99, b"from the future"))
    with pytest.raises(WALCorruptError, match=f"{path} offset {end}: unknown record type 99"):
        WAL.open(waldir)


def test_save_refuses_entries_that_leave_a_gap(waldir):
    with WAL.create(waldir, META) as w:
        w.save(None, [ent(1), ent(2)])
        with pytest.raises(ValueError):
            w.save(None, [ent(4)])
        with pytest.raises(ValueError):
            w.save(None, [ent(3), ent(5)])
        w.save(None, [ent(2, term=2), ent(3, term=2)])
    assert reopen(waldir)[2] == [ent(1), ent(2, 2), ent(3, 2)]


def test_gap_in_entry_indexes_is_corruption(waldir):
    with WAL.create(waldir, META) as w:
        w.save(None, [ent(1), ent(2), ent(3)])
        with open(list_segments(waldir)[-1].path, "ab") as f:  # behind save()'s back, which refuses gaps
            f.write(record.encode(record.RecordType.ENTRY, ent(5).SerializeToString()))
    with pytest.raises(WALCorruptError, match="entry 5 follows entry 3"):
        WAL.open(waldir)


def test_missing_segment_is_corruption(waldir):
    with WAL.create(waldir, META, segment_size=512) as w:
        for i in range(1, 40):
            w.save(None, [ent(i)])
    segments = list_segments(waldir)
    assert len(segments) >= 3
    os.unlink(segments[1].path)
    with pytest.raises(WALCorruptError, match="segment missing"):
        WAL.open(waldir)


def test_interrupted_segment_creation_is_ignored(waldir):
    path, start, end = write_log(waldir)
    leftover = os.path.join(waldir, "0000000000000001-0000000000000006.wal.tmp")
    with open(leftover, "wb") as f:
        f.write(b"half a header")
    assert indexes(reopen(waldir)[2]) == [1, 2, 3, 4, 5]
    assert not os.path.exists(leftover)


def test_lock_prevents_a_second_open(waldir):
    w = WAL.create(waldir, META)
    with pytest.raises(WALLockedError):
        WAL.open(waldir)
    with pytest.raises(WALLockedError):
        WAL.create(waldir, META)
    w.close()
    with WAL.open(waldir) as w2:
        with pytest.raises(WALLockedError):
            WAL.open(waldir)
        assert w2.read_all()[0] == META


def test_create_refuses_an_existing_log_and_open_a_missing_one(waldir):
    with pytest.raises(WALError):
        WAL.open(waldir)
    WAL.create(waldir, META).close()
    with pytest.raises(WALError, match="already"):
        WAL.create(waldir, META)


class FailingFdatasync:
    """The real file system, but fdatasync fails with EIO while failing is set."""

    failing = False

    def __getattr__(self, name: str):
        return getattr(OS, name)

    def fdatasync(self, fd: int) -> None:
        if self.failing:
            raise OSError(errno.EIO, "Input/output error")
        OS.fdatasync(fd)


def test_writes_after_an_io_error_are_refused(waldir):
    fs = FailingFdatasync()
    with WAL.create(waldir, META, fs=fs) as w:
        w.save(None, [ent(1)])
        fs.failing = True
        with pytest.raises(OSError):
            w.save(None, [ent(2)])
        fs.failing = False
        with pytest.raises(WALError, match="earlier I/O error"):
            w.save(None, [ent(3)])
        with pytest.raises(WALError, match="earlier I/O error"):
            w.save_snapshot(2, 1)
    assert indexes(reopen(waldir)[2]) == [1, 2]  # written, never acknowledged; Raft may keep or drop it
