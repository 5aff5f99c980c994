"""Applier: every Range, Put, DeleteRange, Txn and Compaction option, batches and replay.
(Expected values follow real etcd 3.5.1; tests/e2e/test_apply_vs_etcd.py checks them live.)"""
from __future__ import annotations

import pytest

from pyetcd import errors
from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2 as P
from pyetcd.proto.mvccpb import kv_pb2
from pyetcd.server.apply import Applier
from pyetcd.storage.backend import Backend
from pyetcd.storage.mvcc import KVStore
from pyetcd.storage.watchable_store import encode_event

RR = P.RangeRequest


class Node:
    def __init__(self, path: str) -> None:
        self.backend = Backend(path)
        self.applier = Applier(KVStore(self.backend), lease_exists=lambda lease: lease == 42)
        self.index = 0

    def do(self, **request):
        self.index += 1
        item = raft_internal_pb2.InternalRaftRequest(ID=self.index, **request)
        [(resp, events)] = self.applier.apply_batch([(self.index, 2, item)])
        self.events = [kv_pb2.Event.FromString(encode_event(c)) for c in events]
        return resp

    def put(self, key, value=b"", **kw):
        return self.do(put=P.PutRequest(key=key, value=value, **kw))

    def get(self, key, end=b"", **kw):
        return self.applier.range(RR(key=key, range_end=end, **kw))


@pytest.fixture
def node(tmp_path):
    n = Node(str(tmp_path / "db"))
    try:
        yield n
    finally:
        n.backend.close()


@pytest.fixture
def abc(node):
    # a@2 v=3, b@3 v=1, c@4 v=2, a@5 (version 2, value 3), b@6 (version 2)
    for key, value in [(b"a", b"3"), (b"b", b"1"), (b"c", b"2"), (b"a", b"3"), (b"b", b"1")]:
        node.put(key, value)
    return node


def keys(resp):
    return [kv.key for kv in resp.kvs]


def test_put_response_and_events(node):
    resp = node.put(b"a", b"1", lease=42)
    assert resp.header.revision == 2 and not resp.HasField("prev_kv")
    assert [(e.type, e.kv.key, e.kv.lease, e.kv.version) for e in node.events] == [
        (kv_pb2.Event.PUT, b"a", 42, 1)]
    resp = node.put(b"a", b"2", prev_kv=True)
    assert resp.prev_kv.value == b"1" and resp.header.revision == 3
    assert node.put(b"a", ignore_value=True, ignore_lease=True).header.revision == 4
    kv = node.get(b"a").kvs[0]
    assert (kv.value, kv.lease, kv.version, kv.create_revision) == (b"2", 0, 3, 2)


@pytest.mark.parametrize("kw, err", [
    (dict(key=b"x", ignore_value=True), errors.ErrKeyNotFound),
    (dict(key=b"x", ignore_lease=True), errors.ErrKeyNotFound),
    (dict(key=b"x", lease=7), errors.ErrLeaseNotFound),
    (dict(key=b"x", lease=7, ignore_value=True), errors.ErrLeaseNotFound),
])
def test_put_errors(node, kw, err):
    assert node.put(**kw) == err
    assert node.events == [] and node.get(b"x").header.revision == 1


def test_range_basics(abc):
    assert keys(abc.get(b"a", b"c")) == [b"a", b"b"]
    assert keys(abc.get(b"b", b"\0")) == [b"b", b"c"]
    assert keys(abc.get(b"\0", b"\0")) == [b"a", b"b", b"c"]
    assert abc.get(b"zz").count == 0
    resp = abc.get(b"a", b"\0", limit=2)
    assert (keys(resp), resp.count, resp.more) == ([b"a", b"b"], 3, True)
    assert abc.get(b"a", b"\0", limit=3).more is False
    assert keys(abc.get(b"a", b"\0", limit=-1)) == [b"a", b"b", b"c"]
    resp = abc.get(b"a", b"\0", count_only=True)
    assert (resp.count, len(resp.kvs)) == (3, 0)
    resp = abc.get(b"a", keys_only=True)
    assert resp.kvs[0].value == b"" and resp.kvs[0].version == 2
    assert abc.get(b"a").header.revision == 6


def test_range_revisions(abc):
    resp = abc.get(b"a", b"\0", revision=3)
    assert keys(resp) == [b"a", b"b"] and resp.header.revision == 6
    with pytest.raises(errors.EtcdError) as exc:
        abc.get(b"a", revision=7)
    assert exc.value == errors.ErrFutureRev
    abc.do(compaction=P.CompactionRequest(revision=4))
    with pytest.raises(errors.EtcdError) as exc:
        abc.get(b"a", revision=3)
    assert exc.value == errors.ErrCompacted
    assert keys(abc.get(b"a", b"\0", revision=4)) == [b"a", b"b", b"c"]


@pytest.mark.parametrize("order, target, limit, want", [
    (RR.NONE, RR.KEY, 0, [b"a", b"b", b"c"]),
    (RR.DESCEND, RR.KEY, 0, [b"c", b"b", b"a"]),
    (RR.NONE, RR.VALUE, 0, [b"b", b"c", b"a"]),  # a target alone sorts ascending
    (RR.ASCEND, RR.VALUE, 0, [b"b", b"c", b"a"]),
    (RR.DESCEND, RR.MOD, 0, [b"b", b"a", b"c"]),
    (RR.ASCEND, RR.CREATE, 2, [b"a", b"b"]),
    (RR.DESCEND, RR.VERSION, 0, [b"a", b"b", b"c"]),
    (RR.DESCEND, RR.VALUE, 1, [b"a"]),
    (RR.NONE, RR.MOD, 1, [b"a"]),  # no order: fetch limit+1 keys (a, b), sort, cut
    (7, RR.VALUE, 0, [b"a", b"b", b"c"]),  # unknown order: no sorting
])
def test_range_sorting(abc, order, target, limit, want):
    resp = abc.get(b"a", b"\0", sort_order=order, sort_target=target, limit=limit)
    assert keys(resp) == want and resp.count == 3


def test_range_filters(abc):
    resp = abc.get(b"a", b"\0", min_mod_revision=5)
    assert (keys(resp), resp.count) == ([b"a", b"b"], 3)
    resp = abc.get(b"a", b"\0", max_mod_revision=5, limit=1)
    assert (keys(resp), resp.more) == ([b"a"], True)
    assert keys(abc.get(b"a", b"\0", min_create_revision=3, max_create_revision=3)) == [b"b"]
    assert abc.get(b"a", b"\0", min_mod_revision=5, count_only=True).count == 3


def test_delete_range(abc):
    resp = abc.do(delete_range=P.DeleteRangeRequest(key=b"zz"))
    assert (resp.deleted, resp.header.revision, abc.events) == (0, 6, [])
    resp = abc.do(delete_range=P.DeleteRangeRequest(key=b"a", range_end=b"c", prev_kv=True))
    assert resp.deleted == 2 and resp.header.revision == 7
    assert [kv.key for kv in resp.prev_kvs] == [b"a", b"b"]
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in abc.events] == [
        (kv_pb2.Event.DELETE, b"a", 7), (kv_pb2.Event.DELETE, b"b", 7)]
    resp = abc.put(b"a", b"new")
    kv = abc.get(b"a").kvs[0]
    assert (kv.version, kv.create_revision) == (1, 8)


def op(**kw):
    return P.RequestOp(**kw)


def cmp(key, target, result, **kw):
    return P.Compare(key=key, target=getattr(P.Compare, target), result=getattr(P.Compare, result), **kw)


@pytest.mark.parametrize("compare, succeeded", [
    (cmp(b"a", "VALUE", "EQUAL", value=b"3"), True),
    (cmp(b"a", "VALUE", "GREATER", value=b"2"), True),
    (cmp(b"a", "VALUE", "LESS", value=b"3"), False),
    (cmp(b"a", "VERSION", "EQUAL", version=2), True),
    (cmp(b"a", "CREATE", "EQUAL", create_revision=2), True),
    (cmp(b"a", "MOD", "NOT_EQUAL", mod_revision=5), False),
    (cmp(b"a", "LEASE", "EQUAL", lease=0), True),
    (cmp(b"x", "VALUE", "NOT_EQUAL", value=b"q"), False),  # value compares on missing keys fail
    (cmp(b"x", "VERSION", "EQUAL", version=0), True),  # others compare against zero values
    (cmp(b"x", "CREATE", "LESS", create_revision=1), True),
    (cmp(b"a", "VERSION", "EQUAL", range_end=b"c", version=2), True),  # every key must match
    (cmp(b"a", "VERSION", "EQUAL", range_end=b"\0", version=2), False),
    (cmp(b"a", "MOD", "GREATER", range_end=b"\0", mod_revision=3), True),
    (P.Compare(key=b"a", result=9), True),
])
def test_txn_compares(abc, compare, succeeded):
    resp = abc.do(txn=P.TxnRequest(compare=[compare]))
    assert resp.succeeded is succeeded and resp.header.revision == 6


def test_txn_branches_nested_and_own_writes(abc):
    resp = abc.do(txn=P.TxnRequest(
        compare=[cmp(b"a", "VALUE", "EQUAL", value=b"3")],
        success=[op(request_put=P.PutRequest(key=b"n", value=b"1", prev_kv=True)),
                 op(request_range=RR(key=b"a", range_end=b"\0", count_only=True)),
                 op(request_delete_range=P.DeleteRangeRequest(key=b"b", prev_kv=True)),
                 op(request_txn=P.TxnRequest(
                     compare=[cmp(b"n", "VERSION", "EQUAL", version=0)],  # sees the state before
                     success=[op(request_range=RR(key=b"n"))],
                     failure=[op(request_put=P.PutRequest(key=b"never"))]))],
        failure=[op(request_put=P.PutRequest(key=b"never"))]))
    assert resp.succeeded and resp.header.revision == 7
    put, rng, dele, nested = resp.responses
    assert put.response_put.header.revision == 7 and not put.response_put.HasField("prev_kv")
    assert rng.response_range.count == 4 and rng.response_range.header.revision == 7
    assert dele.response_delete_range.deleted == 1
    assert dele.response_delete_range.prev_kvs[0].key == b"b"
    assert nested.response_txn.HasField("header") and nested.response_txn.header.revision == 0
    assert nested.response_txn.succeeded
    inner = nested.response_txn.responses[0].response_range
    assert inner.kvs[0].value == b"1"
    assert [(e.type, e.kv.key) for e in abc.events] == [
        (kv_pb2.Event.PUT, b"n"), (kv_pb2.Event.DELETE, b"b")]
    assert [kv.key for kv in abc.get(b"\0", b"\0").kvs] == [b"a", b"c", b"n"]


@pytest.mark.parametrize("success, err", [
    ([op(request_put=P.PutRequest(key=b"q")), op(request_put=P.PutRequest(key=b"r", lease=5))],
     errors.ErrLeaseNotFound),
    ([op(request_put=P.PutRequest(key=b"q")), op(request_put=P.PutRequest(key=b"r", ignore_value=True))],
     errors.ErrKeyNotFound),
    ([op(request_put=P.PutRequest(key=b"q")), op(request_range=RR(key=b"a", revision=7))],
     errors.ErrFutureRev),
    ([op(request_txn=P.TxnRequest(success=[op(request_range=RR(key=b"a", revision=99))]))],
     errors.ErrFutureRev),
])
def test_txn_errors_change_nothing(abc, success, err):
    assert abc.do(txn=P.TxnRequest(success=success)) == err
    assert abc.events == [] and abc.get(b"q").count == 0 and abc.get(b"a").header.revision == 6


def test_txn_lease_and_readonly(abc):
    resp = abc.do(txn=P.TxnRequest(success=[op(request_put=P.PutRequest(key=b"l", lease=42))]))
    assert resp.header.revision == 7 and abc.get(b"l").kvs[0].lease == 42
    resp = abc.do(txn=P.TxnRequest(success=[op(request_range=RR(key=b"l"))]))
    assert resp.header.revision == 7 and resp.responses[0].response_range.header.revision == 7
    resp = abc.do(txn=P.TxnRequest(success=[op(request_delete_range=P.DeleteRangeRequest(key=b"x"))]))
    assert resp.header.revision == 7
    assert resp.responses[0].response_delete_range.header.revision == 7


def test_compaction(abc):
    assert abc.do(compaction=P.CompactionRequest(revision=9)) == errors.ErrFutureRev
    assert abc.do(compaction=P.CompactionRequest(revision=4)).header.revision == 6
    assert abc.do(compaction=P.CompactionRequest(revision=4)) == errors.ErrCompacted


def test_batch_is_one_transaction_and_replay_is_idempotent(tmp_path):
    node = Node(str(tmp_path / "db"))
    R = raft_internal_pb2.InternalRaftRequest
    batch = [(1, 1, R(ID=1, put=P.PutRequest(key=b"a", value=b"1"))),
             (2, 1, R(ID=2, put=P.PutRequest(key=b"b", lease=5))),
             (3, 2, R(ID=3, put=P.PutRequest(key=b"a", value=b"2")))]
    results = node.applier.apply_batch(batch)
    assert [r[0].header.revision if not isinstance(r[0], errors.EtcdError) else r[0]
            for r in results] == [2, errors.ErrLeaseNotFound, 3]
    assert node.applier.store.consistent_index == 3
    node.backend.close()
    node = Node(str(tmp_path / "db"))
    try:
        again = node.applier.apply_batch(batch + [(4, 2, R(ID=4, put=P.PutRequest(key=b"c")))])
        assert again[:3] == [None, None, None] and again[3][0].header.revision == 4
        assert node.applier.store.consistent_index == 4
        assert [kv.value for kv in node.get(b"a", b"b").kvs] == [b"2"]
    finally:
        node.backend.close()


def test_registered_handler(node):
    def revoke(w, req):
        w.delete_range(b"a", None)
        return P.CompactionResponse()

    node.put(b"a", b"1")
    node.applier.register("compaction", revoke)  # stands in for a field added later
    node.do(compaction=P.CompactionRequest(revision=1))
    assert [e.type for e in node.events] == [kv_pb2.Event.DELETE]
    assert node.get(b"a").count == 0 and node.get(b"a").header.revision == 3
