"""Compaction in batches: scheduled at apply, done physically by KVStore.compact_batch, driven
by server.compaction.Compactor. Checked against one-shot compaction (one unlimited batch right
after scheduling), which is what the store did before batching."""
from __future__ import annotations

import asyncio
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyetcd import errors
from pyetcd.server.compaction import Compactor
from pyetcd.storage.backend import Backend
from pyetcd.storage.keyindex import LONG
from pyetcd.storage.mvcc import KVStore

UNLIMITED = 1 << 30
BUCKETS = ("key", "kindex", "klong", "kbucket")
META = (b"compact_rev", b"finished_compact_rev", b"compact_scan")
# short keys, and long ones (side tables), two of them sharing their first LONG bytes
KEYS = [b"a", b"b", b"c", b"k" * LONG + b"1", b"k" * LONG + b"2", b"m" * 700]
FEW_KEYS = [b"a", b"k" * LONG + b"1", b"k" * LONG + b"2"]  # random histories: keys change often


def put(store, key, value=b"v"):
    with store.write() as w:
        w.put(key, value, 0, w.get(key))
        w.finish_request()


def delete(store, key):
    with store.write() as w:
        w.delete_range(key, None)
        w.finish_request()


def schedule(store, rev):
    with store.write() as w:
        w.compact(rev)


def finish(store, limit=UNLIMITED):
    """Run batches until done; returns how many it took."""
    batches = 1
    while not store.compact_batch(limit):
        batches += 1
    return batches


def dump(store):
    """Everything compaction touches: the history, the key index, its long-key tables, and
    the compaction markers."""
    with store.read() as r:
        out = {name: list(r.txn.cursor(db=store.backend.db(name)).iternext()) for name in BUCKETS}
        out["meta"] = {k: r.txn.get(k, db=store.backend.db("meta")) for k in META}
    return out


def entries(store):
    with store.read() as r:
        return {name: r.txn.stat(store.backend.db(name))["entries"] for name in ("key", "kindex", "klong")}


def visible(store):
    """What clients can see: HashKV and every key at every revision from the compacted one on,
    and the history from there."""
    with store.read() as r:
        low = max(r.compact_rev, 1)
        revs = range(low, r.rev + 1)
        return ([r.hash_kv(rev) for rev in revs], [r.range(b"\0", b"", rev) for rev in revs],
                r.history(0))


def churn(store, rounds, keys=KEYS):
    """Several changes per key, some of them tombstones."""
    for i in range(rounds):
        for j, key in enumerate(keys):
            if (i + j) % 4 == 3:
                delete(store, key)
            else:
                put(store, key, b"%d" % i)


@pytest.fixture
def stores(tmp_path):
    opened = []

    def open_store(name):
        store = KVStore(Backend(str(tmp_path / name), map_size=64 << 20))
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.backend.close()


# ---- scheduling ------------------------------------------------------------------------------

def test_scheduling_deletes_nothing_and_reads_below_fail_at_once(stores):
    store = stores("db")
    churn(store, 5)
    before = entries(store)
    rev = store.rev - 3
    schedule(store, rev)
    assert entries(store) == before
    assert (store.compact_rev, store.finished_compact_rev) == (rev, -1)
    with store.read() as r:
        for call in (lambda: r.range(b"a", None, rev - 1), lambda: r.hash_kv(rev - 1)):
            with pytest.raises(errors.EtcdError) as exc:
                call()
            assert exc.value == errors.ErrCompacted
        assert min(c.main for c in r.history(0)) >= rev
    with store.write() as w:
        with pytest.raises(errors.EtcdError) as exc:
            w.compact(rev)
        assert exc.value == errors.ErrCompacted


def test_nothing_scheduled_is_finished(stores):
    store = stores("db")
    churn(store, 2)
    before = dump(store)
    assert store.compact_batch(1)
    assert dump(store) == before


# ---- batches ---------------------------------------------------------------------------------

def test_batches_respect_the_limit_and_match_one_shot(stores):
    store, reference = stores("batched"), stores("one-shot")
    for s in (store, reference):
        churn(s, 30)
        schedule(s, s.rev - 2)
    finish(reference)
    limit, batches, done = 7, 0, False
    initial = entries(store)["key"]
    while not done:
        before = entries(store)
        done = store.compact_batch(limit)
        after = entries(store)
        batches += 1
        dropped = before["key"] - after["key"]
        assert 0 <= dropped <= limit
        assert before["kindex"] + before["klong"] - after["kindex"] - after["klong"] == dropped
    dropped_total = initial - entries(store)["key"]
    assert dropped_total > 10 * limit and batches >= dropped_total / limit
    assert dump(store) == dump(reference)


def test_a_batch_looks_at_no_more_than_limit_changes(stores):
    store = stores("db")
    for i in range(50):  # 50 keys changed once: nothing to drop, but 50 changes to walk
        put(store, b"k%02d" % i)
    schedule(store, store.rev)
    assert [store.compact_batch(10) for _ in range(6)] == [False] * 4 + [True] * 2


def test_one_key_with_a_long_history_is_dropped_across_batches(stores):
    store = stores("db")
    for i in range(100):
        put(store, b"hot", b"%d" % i)
    schedule(store, store.rev)
    assert finish(store, 10) == 10
    assert entries(store) == {"key": 1, "kindex": 1, "klong": 0}


def test_a_batch_spent_on_a_key_resumes_at_that_key(stores):
    store = stores("db")
    put(store, b"a")
    put(store, b"x")
    schedule(store, store.rev)
    finish(store)  # a@2 stays: the newest change of a at the compacted revision
    delete(store, b"a")
    schedule(store, store.rev)
    assert not store.compact_batch(1)  # a@2 dropped; a's tombstone is still to go
    finish(store, 1)
    assert entries(store) == {"key": 1, "kindex": 1, "klong": 0}


OPS = st.lists(st.one_of(
    st.tuples(st.just("put"), st.sampled_from(FEW_KEYS)),
    st.tuples(st.just("del"), st.sampled_from(FEW_KEYS)),
    st.tuples(st.just("compact"), st.integers(0, 6)),  # that many revisions behind the current
    st.tuples(st.just("batch"), st.integers(1, 3)),  # one batch with this limit
    st.tuples(st.just("finish"), st.integers(1, 3)),  # batches with this limit until done
), max_size=60)


@settings(max_examples=150, deadline=None)
@given(ops=OPS)
def test_random_histories_match_one_shot_at_every_step(tmp_path_factory, ops):
    path = tmp_path_factory.mktemp("random")
    store = KVStore(Backend(str(path / "batched"), map_size=64 << 20))
    reference = KVStore(Backend(str(path / "one-shot"), map_size=64 << 20))
    try:
        for op in ops:
            if op[0] in ("batch", "finish"):
                if op[0] == "batch":
                    store.compact_batch(op[1])
                else:
                    finish(store, op[1])
                assert visible(store) == visible(reference)  # halfway, as if never started
                continue
            for s in (store, reference):
                if op[0] == "put":
                    put(s, op[1])
                elif op[0] == "del":
                    delete(s, op[1])
                elif s.rev - op[1] > s.compact_rev:  # compact: a second one may land on a pending one
                    schedule(s, s.rev - op[1])
            finish(reference)
            assert visible(store) == visible(reference)
        finish(store, 1)
        assert dump(store) == dump(reference)
    finally:
        store.backend.close()
        reference.backend.close()


def test_second_compaction_while_one_is_pending(stores):
    store, reference = stores("batched"), stores("one-shot")
    for s in (store, reference):
        churn(s, 10)
        schedule(s, s.rev - 20)
    finish(reference)
    for _ in range(3):
        assert not store.compact_batch(4)
    for s in (store, reference):
        churn(s, 3)
        schedule(s, s.rev - 5)
    finish(reference)
    assert visible(store) == visible(reference)
    finish(store, 4)
    assert dump(store) == dump(reference)


def test_resume_after_a_crash_after_any_batch(tmp_path):
    def build(name):
        """A finished compaction, more changes, and a second compaction not yet started."""
        store = KVStore(Backend(str(tmp_path / name), map_size=64 << 20))
        churn(store, 4)
        schedule(store, store.rev - 4)
        finish(store)
        churn(store, 4)
        schedule(store, store.rev - 4)
        return store

    reference = build("one-shot")
    finish(reference)
    want = dump(reference)
    reference.backend.close()
    probe = build("probe")
    total = finish(probe, 5)
    probe.backend.close()
    for crash_after in range(total):
        store = build(f"crash{crash_after}")
        for _ in range(crash_after):
            assert not store.compact_batch(5)
        store.backend.close()  # the process dies here; only LMDB remains
        store = KVStore(Backend(str(tmp_path / f"crash{crash_after}"), map_size=64 << 20))
        try:
            finish(store, 5)
            assert dump(store) == want
        finally:
            store.backend.close()


def test_hash_kv_before_during_and_after_physical_compaction(stores):
    untouched, stepped = stores("untouched"), stores("stepped")
    for s in (untouched, stepped):
        churn(s, 6)
        schedule(s, s.rev - 8)
    want = visible(untouched)
    while not stepped.compact_batch(3):
        assert visible(stepped) == want
    assert visible(stepped) == want


def test_hash_kv_unchanged_before_any_compaction(stores):
    """Without compaction HashKV covers every change, as before batching."""
    store = stores("db")
    churn(store, 3)
    with store.read() as r:
        crc = zlib.crc32(b"key")
        for revision, raw in r.txn.cursor(db=store.backend.db("key")).iternext():
            crc = zlib.crc32(raw, zlib.crc32(revision, crc))
        assert r.hash_kv() == (crc, r.rev)


# ---- the driver ------------------------------------------------------------------------------

class CountingStore:
    """A store seen through the Compactor's callable, logging each batch."""

    def __init__(self, store, log, name="store"):
        self.store, self.log, self.name = store, log, name

    def compact_batch(self, limit):
        self.log.append(self.name)
        return self.store.compact_batch(limit)

    @property
    def finished_compact_rev(self):
        return self.store.finished_compact_rev


async def test_driver_yields_to_the_loop_between_batches(stores):
    store = stores("db")
    churn(store, 40)
    schedule(store, store.rev)
    log = []
    compactor = Compactor(lambda: CountingStore(store, log), batch_limit=10)

    async def other_work():
        while True:
            log.append("other")
            await asyncio.sleep(0)

    other = asyncio.get_running_loop().create_task(other_work())
    compactor.start()
    try:
        await compactor.wait_physical(store.compact_rev)
    finally:
        other.cancel()
        await compactor.stop()
    batches = [i for i, what in enumerate(log) if what == "store"]
    assert len(batches) > 10
    assert all(b - a > 1 for a, b in zip(batches, batches[1:]))  # other work between any two
    assert store.finished_compact_rev == store.compact_rev


async def test_driver_resumes_at_start_and_wakes_on_notify(stores):
    store = stores("db")
    churn(store, 5)
    schedule(store, store.rev - 10)  # left by a previous run
    compactor = Compactor(lambda: store, batch_limit=3)
    compactor.start()
    try:
        await compactor.wait_physical(store.compact_rev)
        churn(store, 5)
        schedule(store, store.rev)
        compactor.notify()
        await compactor.wait_physical(store.compact_rev)
        await compactor.wait_physical(1)  # long done: returns at once
    finally:
        await compactor.stop()
    assert store.finished_compact_rev == store.compact_rev


async def test_physical_wait_returns_once_the_history_is_gone(stores):
    store, reference = stores("db"), stores("one-shot")
    for s in (store, reference):
        churn(s, 20)
        schedule(s, s.rev - 1)
    finish(reference)
    compactor = Compactor(lambda: store, batch_limit=5)
    compactor.start()
    try:
        compactor.notify()
        await compactor.wait_physical(store.compact_rev)
        assert dump(store) == dump(reference)
    finally:
        await compactor.stop()


async def test_store_swap_mid_run_keeps_each_stores_work(stores):
    old, new = stores("old"), stores("new")
    for s in (old, new):
        churn(s, 20)
        schedule(s, s.rev - 2)
    log = []
    current = [CountingStore(old, log, "old")]
    compactor = Compactor(lambda: current[0], batch_limit=5)
    compactor.start()
    waiter = asyncio.get_running_loop().create_task(compactor.wait_physical(new.compact_rev))
    try:
        while log.count("old") < 2:
            await asyncio.sleep(0)
        current[0] = CountingStore(new, log, "new")  # the member installed a snapshot
        compactor.notify()
        await waiter
        assert new.finished_compact_rev == new.compact_rev
        assert old.finished_compact_rev < old.compact_rev  # its markers still say unfinished
        assert log.count("new") > 1 and "old" not in log[log.index("new"):]
        current[0] = CountingStore(old, log, "old")  # and back: the old one resumes from LMDB
        compactor.notify()
        await compactor.wait_physical(old.compact_rev)
    finally:
        await compactor.stop()
    reference = stores("reference")
    churn(reference, 20)
    schedule(reference, reference.rev - 2)
    finish(reference)
    assert dump(old) == dump(reference)


async def test_stop_cancels_and_fails_waiters(stores):
    store = stores("db")
    churn(store, 40)
    schedule(store, store.rev)
    compactor = Compactor(lambda: store, batch_limit=2)
    compactor.start()
    waiter = asyncio.get_running_loop().create_task(compactor.wait_physical(store.compact_rev))
    for _ in range(5):
        await asyncio.sleep(0)
    await compactor.stop()
    with pytest.raises(errors.EtcdError) as exc:
        await waiter
    assert exc.value == errors.ErrStopped
    assert store.finished_compact_rev < store.compact_rev  # stopped halfway, resumable
    with pytest.raises(errors.EtcdError):
        await compactor.wait_physical(store.compact_rev)
    finish(store)
