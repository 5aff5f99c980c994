"""SIGKILL the server while concurrent clients write; every acknowledged write must survive,
at its acknowledged revision, and the revision history must have no gap."""
from __future__ import annotations

import random
import threading

import grpc

from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from servers import PYETCD, Server, wait_for

WRITERS = 4
ROUNDS = 4


class Writers:
    """Threads that put unique keys until stopped, recording what the server acknowledged."""

    def __init__(self, endpoint: str, acked: dict[bytes, int], round_no: int) -> None:
        self.endpoint = endpoint
        self.acked = acked
        self.round_no = round_no
        self.count = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._write, args=(i,)) for i in range(WRITERS)]

    def __enter__(self) -> "Writers":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def _write(self, writer: int) -> None:
        with grpc.insecure_channel(self.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            seq = 0
            while not self.stop.is_set():
                key = f"r{self.round_no}/w{writer}/{seq:06d}".encode()
                seq += 1
                try:
                    resp = kv.Put(rpc_pb2.PutRequest(key=key, value=key), timeout=5)
                except grpc.RpcError:
                    return  # the server died under us: this write's fate is unknown
                with self.lock:
                    self.acked[key] = resp.header.revision
                    self.count += 1



def check_store(endpoint: str, acked: dict[bytes, int]) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        resp = kv.Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"), timeout=10)
    stored = {kv.key: kv.mod_revision for kv in resp.kvs}
    for key, rev in acked.items():
        assert stored.get(key) == rev, f"acknowledged {key!r} at revision {rev}, found {stored.get(key)}"
    # every put creates a new key, so the revisions 2..current are exactly the keys' mod revisions
    assert sorted(stored.values()) == list(range(2, resp.header.revision + 1))


def test_acknowledged_writes_survive_sigkill(tmp_path):
    rng = random.Random()
    acked: dict[bytes, int] = {}
    server = Server(PYETCD, str(tmp_path / "crash.etcd"))
    try:
        for round_no in range(ROUNDS):
            server.start()
            check_store(server.endpoint, acked)
            with Writers(server.endpoint, acked, round_no) as writers:
                target = rng.randint(20, 400)
                wait_for(lambda: writers.count >= target, 60, f"{target} acknowledged writes")
                server.kill()
        server.start()
        check_store(server.endpoint, acked)
        assert len(acked) >= ROUNDS * 20
    finally:
        server.stop()
