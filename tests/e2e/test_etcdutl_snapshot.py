"""etcdutl snapshot status/restore on pyetcd's snapshots: a snapshot saved while writes go on,
restored into a new 3-member cluster, holds exactly the keys and revisions it was taken at
(HashKV equal on every member and to the source's at that revision); bad input gets etcdutl's
texts and exit codes (as real etcdutl 3.5.1 on its own snapshots)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from pyetcd.client import Client
from servers import PYETCD, Server, cluster, ref_bin, require_ref, start_all

ETCDUTL = [sys.executable, "-m", "pyetcd.etcdutl"]


def utl(*args: str, binary: list[str] = ETCDUTL) -> subprocess.CompletedProcess:
    return subprocess.run([*binary, *args], capture_output=True, text=True, timeout=60)


def test_restore_into_a_new_3_member_cluster(tmp_path):
    source = Server(PYETCD, str(tmp_path / "source.etcd")).start()
    snap = str(tmp_path / "snap.db")
    stop = threading.Event()
    try:
        with Client([source.url]) as c:
            for i in range(50):
                c.put(f"k{i:02d}", f"v{i}")
            c.delete("k00")

            def write() -> None:
                with Client([source.url]) as w:
                    n = 0
                    while not stop.is_set():
                        w.put(f"load/{n % 20}", str(n))
                        n += 1
            writer = threading.Thread(target=write)
            writer.start()
            try:
                c.snapshot_save(snap)
            finally:
                stop.set()
                writer.join()
            st = json.loads(utl("snapshot", "status", snap, "-w", "json").stdout)
            source_hash = c.hash_kv(st["revision"]).hash
    finally:
        source.stop()
    assert st["revision"] > 50 and st["totalKey"] > 0 and st["totalSize"] > 0

    members = cluster(PYETCD, str(tmp_path), 3)
    for m in members:
        done = utl("snapshot", "restore", snap, "--data-dir", m.data_dir, "--name", m.name,
                   "--initial-cluster", m.initial_cluster, "--initial-advertise-peer-urls", m.peer_url,
                   "--initial-cluster-token", "restored")
        assert done.returncode == 0, done.stderr
        assert "restored snapshot" in done.stderr
    start_all(members)
    try:
        hashes = set()
        for m in members:
            with Client([m.url]) as c:
                assert c.get("k01").kvs[0].value == b"v1" and c.get("k00").count == 0
                resp = c.hash_kv(st["revision"])
                hashes.add(resp.hash)
                assert len(c.member_list().members) == 3
        assert hashes == {source_hash}
        with Client([members[1].url]) as c:  # the new cluster goes on from the snapshot's revision
            assert c.put("after", "x").header.revision == st["revision"] + 1
    finally:
        for m in members:
            m.stop()


@pytest.mark.parametrize("tool", ["etcdutl-3.5.1", "pyetcd"])
def test_bad_input(tool, tmp_path):
    if tool == "etcdutl-3.5.1":
        require_ref()
    binary = [ref_bin("etcdutl")] if tool == "etcdutl-3.5.1" else ETCDUTL
    server = Server([ref_bin("etcd")] if tool == "etcdutl-3.5.1" else PYETCD, str(tmp_path / "s.etcd")).start()
    snap = str(tmp_path / "snap.db")
    try:
        with Client([server.url]) as c:
            c.put("k", "v")
            c.snapshot_save(snap)
    finally:
        server.stop()
    none = utl("snapshot", "status", binary=binary)
    assert (none.returncode, none.stderr) == (128, "Error: snapshot status requires exactly one argument\n")
    missing = utl("snapshot", "status", str(tmp_path / "nope.db"), binary=binary)
    assert missing.returncode == 1 and missing.stderr.endswith(f"Error: stat {tmp_path}/nope.db: no such file or directory\n")
    garbage = tmp_path / "garbage.db"
    garbage.write_text("not a snapshot\n")
    assert utl("snapshot", "status", str(garbage), binary=binary).returncode == 1
    no_dir = utl("snapshot", "restore", snap, binary=binary)
    assert no_dir.returncode == 1 and no_dir.stderr.startswith('Error: required flag(s) "data-dir" not set\nUsage:\n')
    corrupt = tmp_path / "corrupt.db"
    data = bytearray(open(snap, "rb").read())
    data[5000:5002] = b"XX"
    corrupt.write_bytes(bytes(data))
    bad = utl("snapshot", "restore", str(corrupt), "--data-dir", str(tmp_path / "r1"), binary=binary)
    assert bad.returncode == 1 and bad.stderr.splitlines()[-1].startswith("Error: expected sha256 [")
    (tmp_path / "r2").mkdir()
    (tmp_path / "r2" / "x").write_text("x")
    full = utl("snapshot", "restore", snap, "--data-dir", str(tmp_path / "r2"), binary=binary)
    assert full.returncode == 1
    assert full.stderr.splitlines()[-1] == f'Error: data-dir "{tmp_path}/r2" not empty or could not be read'
    assert os.listdir(tmp_path / "r2") == ["x"]


def test_offline_defrag_gives_space_back_and_keeps_everything(tmp_path):
    server = Server(PYETCD, str(tmp_path / "s.etcd")).start()
    try:
        with Client([server.url]) as c:
            for i in range(400):
                c.put(f"big/{i}", "x" * 2000)
            c.put("keep", "v")
            rev = c.delete("big/", "big0").header.revision
            c.compact(rev, physical=True)
            before = c.hash_kv().hash
    finally:
        server.stop()
    db = os.path.join(server.data_dir, "member", "snap", "db", "data.mdb")
    size = os.path.getsize(db)
    done = utl("defrag", "--data-dir", server.data_dir)
    assert done.returncode == 0, done.stderr
    assert "finished defragmenting directory" in done.stderr
    assert os.path.getsize(db) < size / 2
    server.start()
    try:
        with Client([server.url]) as c:
            assert c.get("keep").kvs[0].value == b"v" and c.hash_kv().hash == before
            assert c.get("big/", "big0").count == 0
    finally:
        server.stop()
    assert utl("defrag").stderr.startswith('Error: required flag(s) "data-dir" not set\nUsage:\n')
    assert utl("defrag", "--data-dir", str(tmp_path / "nope")).returncode == 2
