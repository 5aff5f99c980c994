"""Watch streams against pyetcd processes: etcd's guarantees (ordered, unique, reliable, atomic,
resumable) with a slow reader, across a leader change, and on a follower that installs a
database snapshot from the leader while it is watched."""
from __future__ import annotations

import os
import queue
import signal
import threading

import grpc
import pytest

from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from servers import PYETCD, Server, cluster, start_all, wait_for

from test_cluster import leader_of, status


class Watch:
    """A Watch stream read by a thread of its own (or not read at all while ``paused``)."""

    def __init__(self, endpoint: str, *creates: rpc_pb2.WatchCreateRequest, paused: bool = False) -> None:
        # (without BDP probing gRPC keeps its 64 KiB window: a paused reader soon stops the server)
        self.channel = grpc.insecure_channel(endpoint, options=[("grpc.http2.bdp_probe", 0)])
        self.requests: queue.Queue = queue.Queue()
        for c in creates:
            self.requests.put(rpc_pb2.WatchRequest(create_request=c))
        self.responses: list[rpc_pb2.WatchResponse] = []
        self.resume = threading.Event()
        self.error: grpc.RpcError | None = None
        if not paused:
            self.resume.set()
        self.call = rpc_pb2_grpc.WatchStub(self.channel).Watch(iter(self.requests.get, None))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for resp in self.call:
                self.resume.wait()
                self.responses.append(resp)
        except grpc.RpcError as e:
            self.error = e

    def events(self, watch_id: int = 0) -> list:
        return [e for r in list(self.responses) if r.watch_id == watch_id for e in r.events]

    def close(self) -> None:
        self.requests.put(None)
        self.call.cancel()
        self.channel.close()


def revisions(events) -> list[int]:
    return [e.kv.mod_revision for e in events]


def put(endpoint: str, key: bytes, value: bytes) -> int:
    with grpc.insecure_channel(endpoint) as ch:
        return rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=key, value=value), timeout=10).header.revision


def assert_atomic(watch: Watch) -> None:
    """No revision's events are split between two responses (of one watcher)."""
    last: dict[int, int] = {}
    for r in watch.responses:
        if r.events:
            assert r.events[0].kv.mod_revision > last.get(r.watch_id, 0), "a revision split between responses"
            last[r.watch_id] = r.events[-1].kv.mod_revision


@pytest.fixture
def member(tmp_path):
    m = Server(PYETCD, str(tmp_path / "m.etcd"))
    try:
        yield m.start()
    finally:
        m.stop()


def test_a_slow_reader_blocks_neither_writes_nor_other_watchers_and_misses_nothing(member):
    value = b"x" * 2048
    start = put(member.endpoint, b"start", b"") + 1
    slow = Watch(member.endpoint, rpc_pb2.WatchCreateRequest(key=b"k", range_end=b"l", prev_kv=True,
                                                             start_revision=start), paused=True)
    fast = Watch(member.endpoint, rpc_pb2.WatchCreateRequest(key=b"k", range_end=b"l", start_revision=start))
    try:
        wait_for(lambda: fast.responses, 10, "the fast watcher's created response")
        with grpc.insecure_channel(member.endpoint) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            futures = [kv.Put.future(rpc_pb2.PutRequest(key=b"k%d" % (i % 50), value=value)) for i in range(3000)]
            revs = sorted(f.result(timeout=60).header.revision for f in futures)
        # every write was answered while the slow stream had not read anything past its buffers
        wait_for(lambda: len(fast.events()) == 3000, 30, "the fast watcher's events")
        assert revisions(fast.events()) == revs
        slow.resume.set()
        wait_for(lambda: len(slow.events()) >= 3000 or slow.error, 60, "the slow watcher to catch up")
        assert slow.error is None  # (a response past the client's 4 MiB limit would end the stream)
        got = slow.events()
        assert revisions(got) == revs  # in order, none twice, none missing
        for e in got:
            if e.kv.version > 1:
                assert e.prev_kv.value == value and e.prev_kv.mod_revision < e.kv.mod_revision
        assert_atomic(slow)
    finally:
        slow.close()
        fast.close()


def test_events_resume_from_any_kept_revision_and_a_txn_is_one_response(member):
    first = put(member.endpoint, b"a", b"1")
    with grpc.insecure_channel(member.endpoint) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        kv.Txn(rpc_pb2.TxnRequest(success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"a", value=b"2")),
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"b", value=b"2"))]), timeout=5)
        kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"a", range_end=b"c"), timeout=5)
    w = Watch(member.endpoint, rpc_pb2.WatchCreateRequest(key=b"a", range_end=b"c", start_revision=first + 1))
    live = Watch(member.endpoint, rpc_pb2.WatchCreateRequest(key=b"a", range_end=b"c"))
    try:
        wait_for(lambda: len(w.events()) == 4, 10, "the history")
        assert [(e.type, e.kv.key, e.kv.mod_revision) for e in w.events()] == [
            (0, b"a", first + 1), (0, b"b", first + 1), (1, b"a", first + 2), (1, b"b", first + 2)]
        assert_atomic(w)
        wait_for(lambda: live.responses, 10, "created")
        with grpc.insecure_channel(member.endpoint) as ch:
            rpc_pb2_grpc.KVStub(ch).Txn(rpc_pb2.TxnRequest(success=[
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=b"3")) for k in (b"a", b"b")]), timeout=5)
        wait_for(lambda: live.events(), 10, "the live txn")
        assert [len(r.events) for r in live.responses if r.events] == [2]
    finally:
        w.close()
        live.close()


@pytest.fixture
def three(tmp_path):
    members = cluster(PYETCD, str(tmp_path), 3, extra=["--snapshot-count", "20",
                                                        "--experimental-snapshot-catchup-entries", "10"])
    try:
        start_all(members)
        yield members
    finally:
        for m in members:
            if m.proc is not None and m.proc.poll() is None:
                os.kill(m.proc.pid, signal.SIGCONT)
            m.stop()


def test_watchers_on_every_member_see_one_history_across_a_leader_change(three):
    start = put(three[0].endpoint, b"w/start", b"0") + 1
    watches = {m.name: Watch(m.endpoint, rpc_pb2.WatchCreateRequest(key=b"w/", range_end=b"w0",
                                                                     start_revision=start)) for m in three}
    try:
        acked = [put(three[i % 3].endpoint, b"w/%d" % i, b"v") for i in range(30)]
        old = leader_of(three)
        old_id = status(old).header.member_id
        old.kill()
        rest = [m for m in three if m is not old]
        wait_for(lambda: status(rest[0]).leader not in (0, old_id), 15, "a new leader")
        acked += [put(rest[i % 2].endpoint, b"w/x%d" % i, b"v") for i in range(30)]
        for m in rest:
            wait_for(lambda: set(acked) <= set(revisions(watches[m.name].events())), 20, f"{m.name}'s events")
        seqs = [revisions(watches[m.name].events()) for m in rest]
        assert seqs[0] == seqs[1] == sorted(set(seqs[0]))  # the same, ordered, unique
        before = revisions(watches[old.name].events())
        assert before == seqs[0][:len(before)]  # what the dead leader sent was a prefix of it
    finally:
        for w in watches.values():
            w.close()


def test_a_follower_installing_a_snapshot_resyncs_its_watchers(three):
    leader = leader_of(three)
    follower = next(m for m in three if m is not leader)
    start = put(leader.endpoint, b"s/start", b"0") + 1
    on_follower = Watch(follower.endpoint,
                        rpc_pb2.WatchCreateRequest(key=b"s/", range_end=b"s0", start_revision=start, prev_kv=True),
                        rpc_pb2.WatchCreateRequest(key=b"s/k", watch_id=7))
    on_leader = Watch(leader.endpoint, rpc_pb2.WatchCreateRequest(key=b"s/", range_end=b"s0", start_revision=start))
    try:
        wait_for(lambda: sum(r.created for r in on_follower.responses) == 2, 10, "both watchers created")
        acked = [put(leader.endpoint, b"s/k", b"a%d" % i) for i in range(5)]
        wait_for(lambda: len(on_follower.events()) == 5, 10, "the follower's first events")
        os.kill(follower.proc.pid, signal.SIGSTOP)  # it falls behind the leader's log
        # (past Raft's window of 256 appends in flight, which the stopped member's sockets buffer)
        with grpc.insecure_channel(leader.endpoint) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            acked += [kv.Put(rpc_pb2.PutRequest(key=b"s/k" if i % 3 else b"s/%d" % i, value=b"b%d" % i),
                             timeout=10).header.revision for i in range(400)]
        os.kill(follower.proc.pid, signal.SIGCONT)
        wait_for(lambda: "installed database snapshot" in open(follower.log_path).read(), 30, "the snapshot install")
        acked += [put(leader.endpoint, b"s/k", b"c%d" % i) for i in range(5)]
        wait_for(lambda: set(acked) <= set(revisions(on_follower.events())), 30, "the follower's watcher")
        wait_for(lambda: set(acked) <= set(revisions(on_leader.events())), 30, "the leader's watcher")
        got = on_follower.events()
        assert revisions(got) == revisions(on_leader.events()) == sorted(acked)
        for e in got[1:]:
            if e.kv.version > 1:
                assert e.prev_kv.mod_revision and e.prev_kv.mod_revision < e.kv.mod_revision
        assert revisions(on_follower.events(7)) == [e.kv.mod_revision for e in got if e.kv.key == b"s/k"]
        assert_atomic(on_follower)
    finally:
        on_follower.close()
        on_leader.close()


def test_progress_notify_and_progress_requests(tmp_path):
    m = Server(PYETCD, str(tmp_path / "p.etcd"), extra=["--experimental-watch-progress-notify-interval", "200ms"])
    m.start()
    try:
        rev = put(m.endpoint, b"p", b"1")
        w = Watch(m.endpoint, rpc_pb2.WatchCreateRequest(key=b"p", progress_notify=True),
                  rpc_pb2.WatchCreateRequest(key=b"q", watch_id=5))
        wait_for(lambda: any(r.watch_id == 0 and not r.created and not r.events for r in w.responses), 10,
                 "a progress notification")
        notes = [r for r in w.responses if not r.created and not r.events]
        assert all(r.watch_id == 0 and r.header.revision >= rev for r in notes)  # none for watcher 5
        w.requests.put(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))
        wait_for(lambda: any(r.watch_id == -1 for r in w.responses), 10, "the progress response")
        assert [r.header.revision for r in w.responses if r.watch_id == -1] == [rev]
    finally:
        w.close()
        m.stop()


def test_a_stream_that_requires_a_leader_ends_without_one(three):
    survivor = three[0]
    before = rpc_pb2_grpc.WatchStub(grpc.insecure_channel(survivor.endpoint)).Watch(
        iter([rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"x"))]),
        metadata=[("hasleader", "true")])
    assert next(before).created
    for m in three[1:]:
        m.kill()
    wait_for(lambda: status(survivor).leader == 0, 30, "the survivor to lose its leader")
    with pytest.raises(grpc.RpcError) as err:  # (within three election timeouts)
        for _ in before:
            pass
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
    after = rpc_pb2_grpc.WatchStub(grpc.insecure_channel(survivor.endpoint)).Watch(
        iter([rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"x"))]),
        metadata=[("hasleader", "true")])
    with pytest.raises(grpc.RpcError) as err:
        next(after)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader")
