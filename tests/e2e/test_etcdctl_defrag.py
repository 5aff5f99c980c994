"""Defragment on real etcd 3.5.1 and pyetcd, driven by the real etcdctl: after deleting and
compacting most of the data the file shrinks, everything kept is still there, the log has
etcd's lines with the same fields, and ``defrag --cluster`` reaches every member."""
from __future__ import annotations

import json

import grpc
import pytest

from both_servers import SERVERS, server  # noqa: F401 - the fixture
from servers import Server, cluster, etcdctl, have_ref, ref_bin, start_all
from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

VALUE = b"x" * 4000
DEFRAG_LOG = ("starting defragment", "defragmenting", "finished defragmenting directory", "finished defragment")


def fill_and_compact(endpoint: str, count: int) -> rpc_pb2.StatusResponse:
    with grpc.insecure_channel(endpoint) as ch:
        kv, maint = rpc_pb2_grpc.KVStub(ch), rpc_pb2_grpc.MaintenanceStub(ch)
        kv.Put(rpc_pb2.PutRequest(key=b"kept", value=b"v"), timeout=10)
        for i in range(count):
            kv.Put(rpc_pb2.PutRequest(key=b"junk/%05d" % i, value=VALUE), timeout=10)
        rev = kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"junk/", range_end=b"junk0"), timeout=10).header.revision
        kv.Compact(rpc_pb2.CompactionRequest(revision=rev, physical=True), timeout=30)
        return maint.Status(rpc_pb2.StatusRequest(), timeout=10)


def status_and_keys(endpoint: str) -> tuple[rpc_pb2.StatusResponse, list[tuple[bytes, int]]]:
    with grpc.insecure_channel(endpoint) as ch:
        resp = rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"), timeout=10)
        return (rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=10),
                [(kv.key, kv.mod_revision) for kv in resp.kvs])


def defrag_log_lines(srv: Server) -> dict[str, set[str]]:
    """The defrag lines of the member's log: message -> its field names."""
    found = {}
    with open(srv.log_path) as f:
        for line in f:
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("msg") in DEFRAG_LOG:
                    found[entry["msg"]] = set(entry) - {"ts", "caller"}
    return found


def test_etcdctl_defrag_shrinks_the_file_and_keeps_the_data(server):  # noqa: F811
    before = fill_and_compact(server.endpoint, 600)
    _, kept = status_and_keys(server.endpoint)
    out = etcdctl([ref_bin("etcdctl")], server.endpoint, "defrag")
    assert (out.returncode, out.stdout, out.stderr) == (0, f"Finished defragmenting etcd member[{server.endpoint}]\n", "")
    after, keys = status_and_keys(server.endpoint)
    assert keys == kept == [(b"kept", kept[0][1])]
    assert after.dbSize < before.dbSize / 4
    assert after.dbSizeInUse <= before.dbSizeInUse
    assert after.header.revision == before.header.revision
    assert defrag_log_lines(server) == {
        "starting defragment": {"level", "msg"},
        "defragmenting": {"level", "msg", "path", "current-db-size-bytes", "current-db-size",
                          "current-db-size-in-use-bytes", "current-db-size-in-use"},
        "finished defragmenting directory": {
            "level", "msg", "path", "current-db-size-bytes-diff", "current-db-size-bytes", "current-db-size",
            "current-db-size-in-use-bytes-diff", "current-db-size-in-use-bytes", "current-db-size-in-use", "took"},
        "finished defragment": {"level", "msg"}}


@pytest.mark.parametrize("name", list(SERVERS))
def test_etcdctl_defrag_cluster_reaches_every_member(name, tmp_path):
    if name == "etcd-3.5.1" and not have_ref():
        pytest.skip("real etcd 3.5.1 binaries not installed (make ref)")
    members = cluster(SERVERS[name](), str(tmp_path), 3)
    try:
        start_all(members)
        fill_and_compact(members[0].endpoint, 200)
        out = etcdctl([ref_bin("etcdctl")], members[0].endpoint, "defrag", "--cluster")
        assert out.returncode == 0, out.stderr
        assert sorted(out.stdout.splitlines()) == sorted(
            f"Finished defragmenting etcd member[{m.url}]" for m in members)
        for m in members:
            assert "finished defragmenting directory" in defrag_log_lines(m)
            assert status_and_keys(m.endpoint)[1][0][0] == b"kept"
    finally:
        for m in members:
            m.stop()
