"""pyetcd.wal: round trips, segments, follower overwrites, torn-tail repair, corruption, release, lock."""
from __future__ import annotations

import logging
import os

import pytest

from pyetcd.proto.raftpb import raft_pb2
from pyetcd.wal import WAL, SnapshotMarker, WALCorruptError, WALError, WALLockedError
from pyetcd.wal import record
from pyetcd.wal.wal import list_segments

META = b"member=1 cluster=2"


def ent(index: int, term: int = 1) -> raft_pb2.Entry:
    return raft_pb2.Entry(term=term, index=index, data=b"data-%d-" % index * 3)


def hs(term: int, commit: int, vote: int = 0) -> raft_pb2.HardState:
    return raft_pb2.HardState(term=term, vote=vote, commit=commit)


def indexes(entries: list[raft_pb2.Entry]) -> list[int]:
    return [e.index for e in entries]


def reopen(path: str, logger: logging.Logger | None = None):
    with WAL.open(path, logger=logger) as w:
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
def test_flipped_bit_in_last_record_is_a_torn_tail(waldir, caplog, pos):
    path, start, end = write_log(waldir)
    flip_bit(path, start + pos, bit=pos % 8)
    with caplog.at_level(logging.WARNING, logger="pyetcd.wal.wal"):
        assert reopen(waldir)[2] == [ent(i) for i in range(1, 5)]
    assert len(torn_warnings(caplog)) == 1
    assert os.path.getsize(path) == start


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


def test_writes_after_an_io_error_are_refused(waldir, monkeypatch):
    with WAL.create(waldir, META) as w:
        w.save(None, [ent(1)])

        def failing_fdatasync(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fdatasync", failing_fdatasync)
        with pytest.raises(OSError):
            w.save(None, [ent(2)])
        monkeypatch.undo()
        with pytest.raises(WALError, match="earlier I/O error"):
            w.save(None, [ent(3)])
    assert indexes(reopen(waldir)[2]) == [1, 2]  # written, never acknowledged; Raft may keep or drop it
