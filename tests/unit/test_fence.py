"""A fenced request never applies: neither after its fence in the log, nor after a restart."""
from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd.proto.raftpb import raft_pb2
from pyetcd.server.config import ServerConfig
from pyetcd.server.etcdserver import EtcdServer
from pyetcd.storage.backend import Backend

Req = raft_internal_pb2.InternalRaftRequest


def entry(index: int, request: Req) -> raft_pb2.Entry:
    return raft_pb2.Entry(term=2, index=index, data=request.SerializeToString())


def put(request_id: int, key: bytes) -> Req:
    return Req(ID=request_id, put=rpc_pb2.PutRequest(key=key, value=b"v"))


def member(data_dir: str) -> EtcdServer:
    server = EtcdServer(ServerConfig({"data-dir": data_dir}))
    server._use_backend(Backend(server.cfg.backend_path))
    return server


def keys(server: EtcdServer) -> list[bytes]:
    resp = server.applier.range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"))
    return [kv.key for kv in resp.kvs]


async def test_fenced_request_is_skipped_now_and_after_restart(tmp_path):
    server = member(str(tmp_path))
    fence = Req(ID=100, fence=raft_internal_pb2.Fence(request_id=7))
    server.apply([entry(2, put(6, b"before")), entry(3, fence), entry(4, put(7, b"late")),
                  entry(5, put(8, b"other"))])
    assert keys(server) == [b"before", b"other"]
    server.backend.close()

    restarted = member(str(tmp_path))
    restarted.apply([entry(6, put(7, b"late"))])  # another late copy, after a restart
    assert keys(restarted) == [b"before", b"other"]
    restarted.backend.close()
