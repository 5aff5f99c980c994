"""Backend and MVCC store: revisions, tombstones, compaction, long keys, persistence.

Batched (physical) compaction and its driver: test_compaction.py."""
from __future__ import annotations

import os

import pytest

from pyetcd import errors
from pyetcd.proto.mvccpb import kv_pb2
from pyetcd.storage.backend import Backend
from pyetcd.storage.compact_copy import CompactCopy
from pyetcd.storage.keyindex import LONG, REV
from pyetcd.storage.mvcc import KVStore
from pyetcd.storage.watchable_store import encode_event


@pytest.fixture
def store(tmp_path):
    backend = Backend(str(tmp_path / "db"))
    try:
        yield KVStore(backend)
    finally:
        backend.close()


def write(store, *ops):
    """One request per op: ("put", key, value) or ("del", key, end)."""
    with store.write() as w:
        for op in ops:
            if op[0] == "put":
                w.put(op[1], op[2], 0, w.get(op[1]))
            else:
                w.delete_range(op[1], op[2])
            w.finish_request()


def keys_at(store, rev=0, start=b"\0", end=b""):
    with store.read() as r:
        kvs, count, _ = r.range(start, end, rev)
    assert count == len(kvs)
    return [(kv.key, kv.value) for kv in map(kv_pb2.KeyValue.FromString, kvs)]


def test_fresh_store(store):
    assert (store.rev, store.compact_rev, store.consistent_index) == (1, -1, 0)
    assert keys_at(store) == []


def test_put_versions_and_tombstones(store):
    write(store, ("put", b"a", b"1"), ("put", b"a", b"2"), ("del", b"a", None), ("put", b"a", b"3"))
    assert store.rev == 5
    with store.read() as r:
        kv = r.get(b"a")
    assert (kv.create_revision, kv.mod_revision, kv.version, kv.value) == (5, 5, 1, b"3")
    assert keys_at(store, 3) == [(b"a", b"2")]
    assert keys_at(store, 4) == []


def test_request_with_several_changes_is_one_revision(store):
    with store.write() as w:
        w.put(b"a", b"1", 0, None)
        w.put(b"b", b"1", 0, None)
        assert w.visible_rev() == 2
        assert w.range(b"a", b"c")[1] == 2  # the request sees its own writes
        events = [kv_pb2.Event.FromString(encode_event(c)) for c in w.finish_request()]
        assert w.finish_request() == []  # nothing changed: no revision
    assert store.rev == 2
    assert [(e.type, e.kv.mod_revision) for e in events] == [(kv_pb2.Event.PUT, 2)] * 2
    with store.read() as r:
        history = r.history(0)
    assert [REV.unpack(c.revision)[:2] for c in history] == [(2, 0), (2, 1)]


def test_delete_nothing_keeps_revision(store):
    write(store, ("put", b"a", b"1"))
    with store.write() as w:
        assert w.delete_range(b"b", None) == (0, [])
        assert w.finish_request() == []
    assert store.rev == 2


def test_delete_events_and_prev(store):
    write(store, ("put", b"a", b"1"), ("put", b"b", b"2"))
    with store.write() as w:
        count, prevs = w.delete_range(b"a", b"", want_prev=True)
        events = [kv_pb2.Event.FromString(encode_event(c)) for c in w.finish_request()]
    assert count == 2 and [kv_pb2.KeyValue.FromString(p).value for p in prevs] == [b"1", b"2"]
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in events] == [
        (kv_pb2.Event.DELETE, b"a", 4), (kv_pb2.Event.DELETE, b"b", 4)]


def test_read_revision_bounds(store):
    write(store, ("put", b"a", b"1"), ("put", b"a", b"2"), ("put", b"a", b"3"))
    with store.read() as r:
        with pytest.raises(errors.EtcdError) as exc:
            r.range(b"a", None, 5)
        assert exc.value == errors.ErrFutureRev
    with store.write() as w:
        w.compact(3)
    with store.read() as r:
        with pytest.raises(errors.EtcdError) as exc:
            r.range(b"a", None, 2)
        assert exc.value == errors.ErrCompacted
    assert keys_at(store, 3) == [(b"a", b"2")]  # reading at the compacted revision works


def test_compact_errors(store):
    write(store, ("put", b"a", b"1"))
    with store.write() as w:
        with pytest.raises(errors.EtcdError) as exc:
            w.compact(3)
        assert exc.value == errors.ErrFutureRev
        w.compact(0)
        with pytest.raises(errors.EtcdError) as exc:
            w.compact(0)
        assert exc.value == errors.ErrCompacted


def stored_revs(store):
    """Main revisions physically in the ``key`` bucket."""
    with store.read() as r:
        return [REV.unpack(rev)[0] for rev in r.txn.cursor(db=r._key).iternext(values=False)]


def test_compaction_drops_history_and_dead_keys(store):
    write(store, ("put", b"a", b"1"), ("put", b"a", b"2"), ("put", b"g", b"1"), ("del", b"g", None),
          ("put", b"a", b"3"), ("put", b"z", b"1"))
    # revisions: a@2 a@3 g@4 g-del@5 a@6 z@7
    with store.write() as w:
        w.compact(5)
    assert (store.compact_rev, store.finished_compact_rev) == (5, -1)
    assert stored_revs(store) == [2, 3, 4, 5, 6, 7]  # only scheduled
    with store.read() as r:
        assert [c.main for c in r.history(0)] == [6, 7]  # nothing below 5
    assert store.compact_batch(1000)
    assert store.finished_compact_rev == 5
    assert stored_revs(store) == [3, 6, 7]  # a@3 kept (newest <= 5), g gone entirely (tombstone at 5)
    assert keys_at(store, 5) == [(b"a", b"2")]
    assert keys_at(store) == [(b"a", b"3"), (b"z", b"1")]


def test_history_at_the_compacted_revision_shows_what_compaction_keeps(store):
    write(store, ("put", b"a", b"1"), ("put", b"b", b"1"))
    with store.write() as w:  # rev 4: one request deleting a and putting c
        w.delete_range(b"a", None)
        w.put(b"c", b"1", 0, None)
        w.finish_request()
    with store.write() as w:
        w.compact(4)
    with store.read() as r:
        before = r.history(0)
    assert [REV.unpack(c.revision)[:2] for c in before] == [(4, 1)]  # c's put, not a's tombstone
    assert store.compact_batch(1000)
    with store.read() as r:
        assert r.history(0) == before


def test_long_keys_sort_with_short_ones(store):
    long_a, long_b = b"k" * LONG + b"a", b"k" * LONG + b"b" * 2000
    keys = [b"k" * (LONG - 1), b"k" * LONG, long_a, long_b, b"k" * 3000, b"l", b"j"]
    write(store, *[("put", k, b"v") for k in keys], ("put", long_a, b"w"))
    assert [k for k, _ in keys_at(store)] == sorted(keys)
    assert keys_at(store, 0, long_a, None) == [(long_a, b"w")]
    assert keys_at(store, 8, long_a, None) == [(long_a, b"v")]
    assert [k for k, _ in keys_at(store, 0, long_a, b"k" * (LONG + 5))] == [long_a, long_b]
    write(store, ("del", b"k" * LONG, b"l"))
    assert [k for k, _ in keys_at(store)] == [b"j", b"k" * (LONG - 1), b"l"]
    with store.write() as w:
        w.compact(store.rev)
    assert [k for k, _ in keys_at(store)] == [b"j", b"k" * (LONG - 1), b"l"]
    assert store.compact_batch(1000)
    assert [k for k, _ in keys_at(store)] == [b"j", b"k" * (LONG - 1), b"l"]
    with store.read() as r:  # the long keys' side tables are empty again
        assert r.txn.stat(store.backend.db("klong"))["entries"] == 0
        assert r.txn.stat(store.backend.db("kbucket"))["entries"] == 0
    write(store, ("put", long_b, b"again"))
    assert keys_at(store, 0, b"k", b"l") == [(b"k" * (LONG - 1), b"v"), (long_b, b"again")]


def test_reopen_keeps_state(tmp_path):
    path = str(tmp_path / "db")
    backend = Backend(path)
    store = KVStore(backend)
    write(store, ("put", b"a", b"1"), ("put", b"b", b"2"), ("del", b"a", None))
    with store.write() as w:
        w.compact(3)
        backend.set_consistent_index(w.txn, 17, 3)
    backend.checkpoint()
    before = [keys_at(store, rev) for rev in (3, 4)]
    backend.close()
    backend = Backend(path)
    store = KVStore(backend)
    try:
        assert (store.rev, store.compact_rev, store.consistent_index) == (4, 3, 17)
        assert [keys_at(store, rev) for rev in (3, 4)] == before
    finally:
        backend.close()


def test_a_write_that_fails_drops_the_backend_batch_back_to_its_last_commit(store):
    write(store, ("put", b"a", b"1"))
    store.backend.commit()
    write(store, ("put", b"b", b"1"))
    assert store.rev == 3  # reads see the open batch
    with pytest.raises(RuntimeError):
        with store.write() as w:
            w.put(b"c", b"1", 0, None)
            w.finish_request()
            raise RuntimeError
    assert store.backend.pending is None
    assert store.rev == 2 and keys_at(store) == [(b"a", b"1")]


def test_reads_see_the_open_batch_and_other_environments_see_only_commits(store):
    write(store, ("put", b"a", b"1"))
    assert store.backend.pending is not None and keys_at(store) == [(b"a", b"1")]
    with store.backend.begin_read() as committed:
        assert store.backend.get_u64(committed, b"current_rev", 1) == 1
    store.backend.commit()
    assert store.backend.pending is None and keys_at(store) == [(b"a", b"1")]


def test_backend_sizes_and_copy(tmp_path):
    backend = Backend(str(tmp_path / "db"))
    try:
        store = KVStore(backend)
        write(store, *[("put", b"key%d" % i, b"x" * 100) for i in range(200)])
        backend.commit()  # (a copy holds the committed state)
        assert 0 < backend.size_in_use() <= backend.size()
        write(store, *[("del", b"key%d" % i, None) for i in range(150)])
        backend.commit()
        path = CompactCopy(backend, str(tmp_path / "copy")).finish()
        before = keys_at(store)
    finally:
        backend.close()
    os.makedirs(tmp_path / "restored")
    os.replace(path, tmp_path / "restored" / "data.mdb")
    copy = Backend(str(tmp_path / "restored"))
    try:
        restored = KVStore(copy)
        assert restored.rev == 351
        assert keys_at(restored) == before and len(before) == 50
    finally:
        copy.close()


def test_hash_kv_follows_history_and_checks_revisions(tmp_path):
    from pyetcd import errors
    from pyetcd.storage.backend import Backend
    from pyetcd.storage.mvcc import KVStore

    def fresh(name):
        store = KVStore(Backend(str(tmp_path / name)))
        with store.write() as w:
            w.put(b"a", b"1", 0, None)
            w.finish_request()
        with store.write() as w:
            w.put(b"a", b"2", 0, w.get(b"a"))
            w.finish_request()
        return store

    one, two = fresh("one"), fresh("two")
    with one.read() as v1, two.read() as v2:
        assert v1.hash_kv() == v2.hash_kv()          # same history, same hash
        assert v1.hash_kv(2) != v1.hash_kv(3)        # a later revision covers more
        with pytest.raises(errors.EtcdError) as e:
            v1.hash_kv(99)
        assert e.value == errors.ErrFutureRev
    with two.write() as w:
        w.put(b"b", b"x", 0, None)
        w.finish_request()
    with one.read() as v1, two.read() as v2:
        assert v1.hash_kv(3) == v2.hash_kv(3)
        assert v1.hash_kv() != v2.hash_kv()
