"""MemoryStorage and RaftLog basics: append/overwrite, compaction, snapshots, size limits."""
import pytest

from pyetcd.proto.raftpb import raft_pb2 as M
from pyetcd.raft import CompactedError, MemoryStorage, SnapshotOutOfDateError, UnavailableError
from pyetcd.raft.log import RaftLog


def ents(lo, hi, term=1, size=0):
    return [M.Entry(index=i, term=term, data=b"x" * size) for i in range(lo, hi)]


def test_append_overwrites_a_suffix():
    st = MemoryStorage()
    st.append(ents(1, 6))
    st.append(ents(4, 5, term=2))
    assert st.last_index() == 4 and st.term(4) == 2 and st.term(3) == 1
    with pytest.raises(UnavailableError):
        st.append(ents(7, 8))  # a gap


def test_compact_and_snapshot():
    st = MemoryStorage()
    st.append(ents(1, 11))
    cs = M.ConfState(voters=[1, 2, 3])
    snap = st.create_snapshot(8, cs, b"image")
    st.compact(6)
    assert (st.first_index(), st.last_index(), st.term(6)) == (7, 10, 1)
    assert snap.metadata.index == 8 and st.initial_state()[1] == cs
    with pytest.raises(CompactedError):
        st.entries(6, 8)
    with pytest.raises(CompactedError):
        st.term(5)
    with pytest.raises(SnapshotOutOfDateError):
        st.create_snapshot(7, cs, b"older")
    st.apply_snapshot(M.Snapshot(data=b"new", metadata=M.SnapshotMetadata(index=20, term=3)))
    assert (st.first_index(), st.last_index(), st.term(20)) == (21, 20, 3)


def test_entries_size_limit_returns_at_least_one():
    st = MemoryStorage()
    st.append(ents(1, 11, size=100))
    assert len(st.entries(1, 11, max_size=1)) == 1
    assert len(st.entries(1, 11, max_size=300)) == 2
    assert len(st.entries(1, 11)) == 10


def test_raftlog_spans_stable_and_unstable_parts():
    st = MemoryStorage()
    st.append(ents(1, 6))
    log = RaftLog(st, 1 << 20)
    log.append(ents(6, 9, term=2))
    assert [e.index for e in log.slice(4, 9)] == [4, 5, 6, 7, 8]
    assert log.term(5) == 1 and log.term(8) == 2 and log.term(9) is None
    log.append(ents(4, 5, term=3))  # replaces stable 4..5 and unstable 6..8
    assert log.last_index() == 4 and log.term(4) == 3 and log.term(3) == 1
    assert log.find_conflict_by_term(4, 2) == 3
    log.stable_to(4, 3)
    assert log.unstable == []
