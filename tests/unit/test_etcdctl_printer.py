"""etcdctl output formats for KV responses (expected texts observed from etcdctl 3.5.1)."""
from __future__ import annotations

from pyetcd.etcdctl.printer import Printer, go_json
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.proto.mvccpb import kv_pb2

HDR = rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, revision=5, raft_term=3)
KV = kv_pb2.KeyValue(key=b"foo", create_revision=2, mod_revision=2, version=1, value=b"bar")


def _show(capfdbinary, fmt: str, kind: str, resp, is_hex: bool = False) -> bytes:
    Printer(fmt, is_hex).show(kind, resp)
    return capfdbinary.readouterr().out


def test_json_is_go_encoding_of_the_structs():
    resp = rpc_pb2.RangeResponse(header=HDR, kvs=[KV, kv_pb2.KeyValue(key=b"e", version=1)], count=2)
    assert go_json(resp) == {"header": {"cluster_id": 1, "member_id": 2, "revision": 5, "raft_term": 3},
                             "kvs": [{"key": "Zm9v", "create_revision": 2, "mod_revision": 2, "version": 1,
                                      "value": "YmFy"}, {"key": "ZQ==", "version": 1}], "count": 2}
    txn = rpc_pb2.TxnResponse(header=HDR, responses=[rpc_pb2.ResponseOp(
        response_put=rpc_pb2.PutResponse(header=rpc_pb2.ResponseHeader(revision=5)))])
    assert go_json(txn)["responses"] == [{"Response": {"response_put": {"header": {"revision": 5}}}}]


def test_simple_and_hex(capfdbinary):
    resp = rpc_pb2.RangeResponse(header=HDR, kvs=[KV], count=1)
    assert _show(capfdbinary, "simple", "get", resp) == b"foo\nbar\n"
    assert _show(capfdbinary, "simple", "get", resp, True) == b"\\x66\\x6f\\x6f\n\\x62\\x61\\x72\n"
    put = rpc_pb2.PutResponse(header=HDR, prev_kv=KV)
    assert _show(capfdbinary, "simple", "put", put) == b"OK\nfoo\nbar\n"
    dele = rpc_pb2.DeleteRangeResponse(header=HDR, deleted=1)
    assert _show(capfdbinary, "simple", "del", dele) == b"1\n"


def test_fields(capfdbinary):
    dele = rpc_pb2.DeleteRangeResponse(header=HDR, deleted=1, prev_kvs=[KV])
    assert _show(capfdbinary, "fields", "del", dele).decode().splitlines() == [
        '"ClusterID" : 1', '"MemberID" : 2', '"Revision" : 5', '"RaftTerm" : 3', '"Deleted" : 1',
        '"PrevKey" : "foo"', '"PrevCreateRevision" : 2', '"PrevModRevision" : 2', '"PrevVersion" : 1',
        '"PrevValue" : "bar"', '"PrevLease" : 0']
