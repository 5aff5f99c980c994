"""Start-up and shutdown of the `etcd` process: clean stop on signals, clear start-up errors."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import grpc
import pytest

from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from servers import PYETCD, Server


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_and_data_survives(tmp_path, sig):
    server = Server(PYETCD, str(tmp_path / "s.etcd")).start()
    try:
        with grpc.insecure_channel(server.endpoint) as ch:
            rev = rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=b"k", value=b"v"), timeout=5).header.revision
        server.proc.send_signal(sig)
        assert server.proc.wait(timeout=30) == 0
        assert '"msg":"closed etcd server"' in open(server.log_path).read()
        server.start()
        with grpc.insecure_channel(server.endpoint) as ch:
            kvs = rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=5).kvs
        assert [(kv.value, kv.mod_revision) for kv in kvs] == [(b"v", rev)]
    finally:
        server.stop()


def test_corrupt_wal_is_a_clear_startup_error(tmp_path):
    server = Server(PYETCD, str(tmp_path / "c.etcd")).start()
    with grpc.insecure_channel(server.endpoint) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        for i in range(20):
            kv.Put(rpc_pb2.PutRequest(key=b"k%d" % i, value=b"v" * 100), timeout=5)
    server.stop()
    wal_dir = os.path.join(server.data_dir, "member", "wal")
    segment = os.path.join(wal_dir, sorted(f for f in os.listdir(wal_dir) if f.endswith(".wal"))[0])
    with open(segment, "r+b") as f:  # flip a byte in the middle: records follow it
        f.seek(os.path.getsize(segment) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    proc = subprocess.run(server.argv(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "failed to start etcd server" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_flag_prints_usage_and_exits_2():
    proc = subprocess.run([sys.executable, "-m", "pyetcd", "--bogus"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("flag provided but not defined: -bogus\nUsage:")


def test_client_port_in_use_fails_before_the_member_starts(tmp_path):
    """The client listener is bound first, as etcd's: a taken port stops the start-up with Go's
    message, before the member writes its data dir or dials a peer."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = Server(PYETCD, str(tmp_path / "busy.etcd"), client_port=port)
        proc = subprocess.run(server.argv(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f'"error":"listen tcp 127.0.0.1:{port}: bind: address already in use"' in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(os.path.join(server.data_dir, "member"))
