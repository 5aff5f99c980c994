"""--auto-compaction-retention on real etcd 3.5.1 and pyetcd: old revisions go, recent ones stay."""
from __future__ import annotations

import grpc
import pytest

from both_servers import SERVERS
from servers import Server, have_ref, wait_for
from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc


@pytest.mark.parametrize("name", list(SERVERS))
@pytest.mark.parametrize("flags", [["--auto-compaction-retention=1s"],
                                   ["--auto-compaction-mode=periodic", "--auto-compaction-retention=2s"]])
def test_periodic_auto_compaction_drops_history_older_than_the_retention(name, flags, tmp_path):
    if name == "etcd-3.5.1" and not have_ref():
        pytest.skip("real etcd 3.5.1 binaries not installed (make ref)")
    server = Server(SERVERS[name](), str(tmp_path / "member.etcd"), extra=flags)
    try:
        server.start()
        with grpc.insecure_channel(server.endpoint) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            first = kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"1"), timeout=10).header.revision

            def old_revision_compacted() -> bool:
                kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"again"), timeout=10)
                try:
                    kv.Range(rpc_pb2.RangeRequest(key=b"k", revision=first), timeout=10)
                except grpc.RpcError as e:
                    assert (e.code(), e.details()) == (grpc.StatusCode.OUT_OF_RANGE,
                                                       "etcdserver: mvcc: required revision has been compacted")
                    return True
                return False

            wait_for(old_revision_compacted, 30, "the first revision to be compacted away")
            latest = kv.Range(rpc_pb2.RangeRequest(key=b"k"), timeout=10)
            # the newest revision is never compacted: it is readable at its own revision
            assert kv.Range(rpc_pb2.RangeRequest(key=b"k", revision=latest.header.revision), timeout=10).kvs
    finally:
        server.stop()
    if name == "pyetcd":
        log = open(server.log_path).read()
        assert '"msg":"starting auto periodic compaction"' in log and '"msg":"completed auto periodic compaction"' in log
