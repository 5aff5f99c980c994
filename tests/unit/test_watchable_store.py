"""The store's watchers: every watcher gets each change it watches once, in revision order, each
revision whole, whether it is synced, slow (its sink full), started in the past, or the store is
replaced under it; one starting below the compacted revision is told so."""
from __future__ import annotations

import asyncio
import os
import random

import pytest

from pyetcd.proto.mvccpb import kv_pb2
from pyetcd.storage.backend import Backend
from pyetcd.storage.compact_copy import CompactCopy
from pyetcd.storage.mvcc import KVStore
from pyetcd.storage.watchable_store import Watcher, WatchableStore, encode_event
from pyetcd.v3rpc.watch import _fragments

KEYS = [b"a", b"b", b"c", b"d"]


class Sink:
    """Records what a watcher is sent; ``room`` says whether it takes more."""

    def __init__(self) -> None:
        self.room = True
        self.responses: list[tuple[int, list[kv_pb2.Event], int]] = []  # (watch id, events, revision)
        self.compacted: list[tuple[int, int]] = []

    def has_room(self) -> bool:
        return self.room

    def send_events(self, w, batch, revision) -> None:
        assert all(main == kv_pb2.Event.FromString(e).kv.mod_revision for main, e in batch.events)
        self.responses.append((w.id, [kv_pb2.Event.FromString(e) for _, e in batch.events], revision))

    def send_compacted(self, w, compact_revision) -> None:
        self.compacted.append((w.id, compact_revision))

    def events(self, watch_id: int) -> list[kv_pb2.Event]:
        return [e for wid, evs, _ in self.responses if wid == watch_id for e in evs]


class Member:
    """A store, its watchers, and writes that notify them the way the server does."""

    def __init__(self, path) -> None:
        self.path = path
        self.store = KVStore(Backend(str(path)))
        self.hub = WatchableStore(lambda: self.store)

    def write(self, *ops) -> None:
        with self.store.write() as w:
            for op, key in ops:
                if op == "put":
                    prev = w.get(key)
                    w.put(key, b"v%d" % (w.rev + 1), 0, prev)
                else:
                    w.delete_range(key, None)
            changes = w.finish_request()
        self.hub.notify(changes)

    def expected(self, w: Watcher, start: int) -> list[tuple[int, bytes, int]]:
        with self.store.read() as view:
            history = view.history(start)
        out = []
        for c in history:
            inside = c.key == w.key if w.end is None else w.key <= c.key and (not w.end or c.key < w.end)
            if inside and w.wants(c):
                out.append((c.main, c.key, int(c.deleted)))
        return out


def seen(events: list[kv_pb2.Event]) -> list[tuple[int, bytes, int]]:
    return [(e.kv.mod_revision, e.kv.key, e.type) for e in events]


async def settle(hub: WatchableStore) -> None:
    """Let the sync loop run until it has nothing it can do."""
    for _ in range(1000):
        await asyncio.sleep(0)
        if not hub._work.is_set() and not any(w.sink.has_room() for w in hub.unsynced):
            return
    raise AssertionError("the sync loop does not settle")


@pytest.fixture
def member(tmp_path):
    m = Member(tmp_path / "db")
    yield m
    m.store.backend.close()


@pytest.mark.parametrize("seed", range(12))
def test_every_watcher_sees_each_change_once_in_order_whatever_its_pace(member, seed):
    rng = random.Random(seed)

    async def run():
        member.hub.start()
        for _ in range(rng.randrange(0, 30)):  # some history before the watchers
            member.write(*[(rng.choice(["put", "put", "del"]), rng.choice(KEYS)) for _ in range(rng.randrange(1, 4))])
        watchers = []
        for i in range(6):
            sink = Sink()
            end = rng.choice([None, b"c", b""])
            w = Watcher(i, rng.choice(KEYS[:2]), end, rng.randrange(1, member.store.rev + 3), sink,
                        no_put=rng.random() < 0.15, no_delete=rng.random() < 0.15, prev_kv=rng.random() < 0.5)
            watchers.append((w, w.next_rev))
            member.hub.watch(w)
        for step in range(150):
            op = rng.random()
            if op < 0.5:
                member.write(*[(rng.choice(["put", "put", "del"]), rng.choice(KEYS)) for _ in range(rng.randrange(1, 4))])
            elif op < 0.8:
                w = rng.choice(watchers)[0]
                w.sink.room = not w.sink.room
                member.hub.wake()
            else:
                await asyncio.sleep(0)
        for w, _ in watchers:
            w.sink.room = True
        member.hub.wake()
        await settle(member.hub)
        for w, start in watchers:
            assert w.synced
            got = w.sink.events(w.id)
            assert seen(got) == member.expected(w, start), (w.id, start)
            revisions = [rev for wid, evs, rev in w.sink.responses if wid == w.id]
            assert revisions == sorted(revisions)
            for wid, evs, rev in w.sink.responses:  # a revision's events never split between responses
                if wid == w.id and evs:
                    assert evs[-1].kv.mod_revision <= rev
            mains = [e.kv.mod_revision for wid, evs, _ in w.sink.responses if wid == w.id for e in evs[-1:]]
            firsts = [e.kv.mod_revision for wid, evs, _ in w.sink.responses if wid == w.id for e in evs[:1]]
            assert all(a < b for a, b in zip(mains, firsts[1:]))
            if w.prev_kv:
                with member.store.read() as view:
                    for e in got:
                        prev = view.range(e.kv.key, None, e.kv.mod_revision - 1)[0]
                        want = kv_pb2.KeyValue.FromString(prev[0]) if prev else kv_pb2.KeyValue()
                        assert e.prev_kv == want
        await member.hub.stop()

    asyncio.run(run())


def test_a_watcher_below_the_compacted_revision_is_told_and_dropped(member):
    async def run():
        member.hub.start()
        for _ in range(5):
            member.write(("put", b"a"))
        with member.store.write() as w:
            w.compact(4)
        sink = Sink()
        old, kept = Watcher(1, b"a", None, 2, sink), Watcher(2, b"a", None, 4, sink)
        member.hub.watch(old)
        member.hub.watch(kept)
        await settle(member.hub)
        assert sink.compacted == [(1, 4)] and old not in member.hub.unsynced and not old.synced
        assert [e.kv.mod_revision for e in sink.events(2)] == [4, 5, 6]
        await member.hub.stop()

    asyncio.run(run())


def test_a_replaced_store_resyncs_its_watchers_without_gap_or_repeat(member, tmp_path):
    """A database from the leader: the watcher goes on from where it was in the old store."""
    async def run():
        member.hub.start()
        member.write(("put", b"a"))
        sink = Sink()
        w = Watcher(0, b"a", b"", 0, sink)
        w.next_rev = member.store.rev + 1
        member.hub.watch(w)
        member.write(("put", b"a"))
        old_rev = member.store.rev
        # "the leader's" store: the same history, and more after it
        member.store.backend.commit()
        copy = CompactCopy(member.store.backend, str(tmp_path / "copy")).finish()
        os.makedirs(tmp_path / "leader")
        os.replace(copy, tmp_path / "leader" / "data.mdb")
        leader = KVStore(Backend(str(tmp_path / "leader")))
        with leader.write() as lw:
            lw.put(b"b", b"x", 0, None)
            lw.finish_request()
            lw.delete_range(b"a", None)
            lw.finish_request()
        member.store.backend.close()
        member.store = leader
        member.hub.restore(old_rev)
        await settle(member.hub)
        assert seen(sink.events(0)) == [(3, b"a", 0), (4, b"b", 0), (5, b"a", 1)]
        assert w.synced
        member.write(("put", b"c"))
        assert seen(sink.events(0))[-1] == (6, b"c", 0)
        await member.hub.stop()

    asyncio.run(run())


def test_a_future_start_gets_only_later_changes_and_a_negative_one_no_history(member):
    async def run():
        member.hub.start()
        member.write(("put", b"a"))
        sink = Sink()
        member.hub.watch(Watcher(0, b"a", None, member.store.rev + 3, sink))
        member.hub.watch(Watcher(1, b"a", None, -1, sink))
        await settle(member.hub)
        for _ in range(4):
            member.write(("put", b"a"))
        assert [e.kv.mod_revision for e in sink.events(0)] == [5, 6]
        assert [e.kv.mod_revision for e in sink.events(1)] == [3, 4, 5, 6]
        await member.hub.stop()

    asyncio.run(run())


def test_encode_event_is_mvccpb_event():
    from pyetcd.storage.mvcc import Change
    from pyetcd.storage.keyindex import REV, TOMBSTONE
    kv = kv_pb2.KeyValue(key=b"k", mod_revision=7)
    prev = kv_pb2.KeyValue(key=b"k", value=b"old", mod_revision=5, create_revision=5, version=1)
    change = Change(REV.pack(7, 0, TOMBSTONE), b"k", kv.SerializeToString())
    event = kv_pb2.Event.FromString(encode_event(change, prev.SerializeToString()))
    assert event == kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv, prev_kv=prev)


def test_fragments_stay_under_the_limit_and_only_the_last_is_whole():
    from pyetcd.proto.etcdserverpb import rpc_pb2
    head = rpc_pb2.WatchResponse(header=rpc_pb2.ResponseHeader(revision=9), watch_id=3).SerializeToString()
    events = [kv_pb2.Event(kv=kv_pb2.KeyValue(key=b"k%d" % i, value=b"x" * 100)) for i in range(10)]
    fields = [b"\x5a" + bytes([len(e.SerializeToString())]) + e.SerializeToString() for e in events]
    parts = [rpc_pb2.WatchResponse.FromString(p) for p in _fragments(head, fields, 350)]
    assert len(parts) > 1 and all(p.fragment for p in parts[:-1]) and not parts[-1].fragment
    assert [e for p in parts for e in p.events] == events
    assert all(p.watch_id == 3 and p.header.revision == 9 for p in parts)
    assert all(len(p.SerializeToString()) < 350 for p in parts)
