"""Maintenance.Snapshot: `etcdctl snapshot save` against real etcd 3.5.1 and pyetcd, and the stream's
shape on both (32 KiB blobs counting remaining_bytes down to 0, then the SHA-256 of the database)."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import sys

import grpc
import lmdb

import pytest

from both_servers import server  # noqa: F401 - the fixture
from servers import PYETCD, etcdctl, ref_bin, wait_for
from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

CTL = [ref_bin("etcdctl")]
VALUE = os.urandom(20_000).hex().encode()  # 40 kB: the database spans several blobs


def snapshot_messages(endpoint: str) -> list[rpc_pb2.SnapshotResponse]:
    with grpc.insecure_channel(endpoint) as ch:
        return list(rpc_pb2_grpc.MaintenanceStub(ch).Snapshot(rpc_pb2.SnapshotRequest(), timeout=30))


def test_snapshot_stream_and_etcdctl_snapshot_save(server, tmp_path):  # noqa: F811
    with grpc.insecure_channel(server.endpoint) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        for i in range(8):
            kv.Put(rpc_pb2.PutRequest(key=b"snap/%d" % i, value=VALUE), timeout=10)

    messages = snapshot_messages(server.endpoint)
    *data, checksum = messages
    body = b"".join(m.blob for m in data)
    assert len(data) >= 2 and all(len(m.blob) == 32 * 1024 for m in data[:-1]) and 0 < len(data[-1].blob) <= 32 * 1024
    assert [m.remaining_bytes for m in data] == [len(body) - sum(len(d.blob) for d in data[:i + 1])
                                                for i in range(len(data))]
    assert checksum.remaining_bytes == 0 and checksum.blob == hashlib.sha256(body).digest()

    path = str(tmp_path / "snap.db")
    out = etcdctl(CTL, server.endpoint, "snapshot", "save", path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"Snapshot saved at {path}"
    with open(path, "rb") as f:
        saved = f.read()
    assert hashlib.sha256(saved[:-32]).digest() == saved[-32:]

    if server.cmd == PYETCD:
        # the database itself: every revision of the puts is in bucket `key`
        db_file = str(tmp_path / "data.mdb")
        with open(db_file, "wb") as f:
            f.write(saved[:-32])
        env = lmdb.open(db_file, subdir=False, readonly=True, lock=False, max_dbs=16)
        try:
            with env.begin() as txn:
                assert txn.stat(env.open_db(b"key", txn=txn, create=False))["entries"] >= 8
        finally:
            env.close()


def test_an_abandoned_snapshot_stream_leaves_no_copy_behind(server):  # noqa: F811
    if server.cmd != PYETCD:
        pytest.skip("the copy is pyetcd's own (etcd streams from a read transaction)")
    snap_dir = os.path.join(server.data_dir, "member", "snap")
    copies = lambda: glob.glob(os.path.join(snap_dir, "send-*"))  # noqa: E731
    with grpc.insecure_channel(server.endpoint) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        for i in range(300):  # 12 MB: more than HTTP/2 flow control lets through unread
            kv.Put(rpc_pb2.PutRequest(key=b"big/%d" % i, value=VALUE), timeout=10)
        stream = rpc_pb2_grpc.MaintenanceStub(ch).Snapshot(rpc_pb2.SnapshotRequest(), timeout=30)
        next(stream)
        assert copies(), "the stream is still being sent from its copy"
        stream.cancel()
    wait_for(lambda: not copies(), 10, "the snapshot copy to be removed")
    assert len(snapshot_messages(server.endpoint)) >= 2  # and the member still serves snapshots


PY_CTL = [sys.executable, "-m", "pyetcd.etcdctl"]


def test_pyetcd_etcdctl_snapshot_save_writes_what_etcdctl_writes(server, tmp_path):  # noqa: F811
    with grpc.insecure_channel(server.endpoint) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        for i in range(4):
            kv.Put(rpc_pb2.PutRequest(key=b"snap/%d" % i, value=VALUE), timeout=10)
    saved = {}
    for name, ctl in (("etcdctl", CTL), ("pyetcd", PY_CTL)):
        path = str(tmp_path / f"{name}.db")
        out = etcdctl(ctl, server.endpoint, "snapshot", "save", path)
        assert (out.returncode, out.stdout) == (0, f"Snapshot saved at {path}\n"), out.stderr
        assert [json.loads(line)["msg"] for line in out.stderr.splitlines()] == [
            "created temporary db file", "opened snapshot stream; downloading", "fetching snapshot",
            "completed snapshot read; closing", "fetched snapshot", "saved"]
        assert os.stat(path).st_mode & 0o777 == 0o600 and not os.path.exists(path + ".part")
        with open(path, "rb") as f:
            saved[name] = f.read()
    assert saved["pyetcd"] == saved["etcdctl"]


def test_pyetcd_etcdctl_snapshot_save_refusals(server, tmp_path):  # noqa: F811
    cases = [
        ((), 128, "Error: snapshot save expects one argument\n"),
        # a second --endpoints adds to the first, as pflag's string slices do
        ((f"--endpoints={server.endpoint},127.0.0.1:1", str(tmp_path / "x.db")), 5,
         "Error: snapshot must be requested to one selected node, not multiple "
         f"[{server.endpoint} {server.endpoint} 127.0.0.1:1]\n"),
        ((str(tmp_path / "no" / "x.db"),), 5,
         f"Error: could not open {tmp_path}/no/x.db.part (open {tmp_path}/no/x.db.part: no such file or directory)\n"),
    ]
    for args, code, stderr in cases:
        for ctl in (CTL, PY_CTL):
            out = etcdctl(ctl, server.endpoint, "snapshot", "save", *args)
            assert (out.returncode, out.stderr.splitlines()[-1] + "\n") == (code, stderr), (ctl, out.stderr)
