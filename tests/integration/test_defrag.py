"""Maintenance.Defragment: a compact copy of the database replaces the file. Everything the
member held survives it, the member serves while the copy is made (writes meanwhile are caught
up into the copy), and a crash at any step of the swap (a process death, or a power loss with
the page cache intact) restarts with every acknowledged write. Members run in this process on
127.0.0.1 free ports."""
from __future__ import annotations

import asyncio
import os
import threading
import types

import pytest

from pyetcd.fileutil import OSFileSystem
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.server.etcdserver import EtcdServer
from pyetcd.server import defrag
from pyetcd.server.platform import Platform
from pyetcd.storage.compact_copy import CompactCopy
from test_member_seams import config, keys, leader, put

ALL = dict(key=b"\0", range_end=b"\0")


class CrashingDisk(OSFileSystem):
    """The real file system, counting its operations; the ``crash_at``-th raises (the process
    dies there). Its boot id can change to say the power went off (the page cache survived)."""

    def __init__(self) -> None:
        self.calls = 0
        self.crash_at: int | None = None
        self.boot = "boot-1"

    def boot_id(self) -> str:
        return self.boot

    def __getattribute__(self, name: str):
        attr = super().__getattribute__(name)
        if name.startswith("_") or name in ("calls", "crash_at", "boot") or not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls += 1
            if self.calls == self.crash_at:
                raise OSError(f"injected crash at {name}{args!r}")
            return attr(*args, **kwargs)
        return counted


async def defragment(server: EtcdServer) -> None:
    await server.defragment(rpc_pb2.DefragmentRequest())


async def fill_and_compact(server: EtcdServer, count: int) -> None:
    """``count`` big keys put, deleted and compacted away: free pages for a defrag to drop."""
    for i in range(count):
        await server.put(rpc_pb2.PutRequest(key=b"junk/%05d" % i, value=b"x" * 2000))
    resp = await server.delete_range(rpc_pb2.DeleteRangeRequest(key=b"junk/", range_end=b"junk0"))
    await server.compact(rpc_pb2.CompactionRequest(revision=resp.header.revision, physical=True))


def state(server: EtcdServer) -> tuple:
    resp = server.applier.range(rpc_pb2.RangeRequest(**ALL))
    return (resp.header.revision, [(kv.key, kv.value, kv.mod_revision, kv.lease) for kv in resp.kvs],
            sorted(server.lessor.leases), [(a.memberID, a.alarm) for a in server.alarms.get()],
            sorted(server.auth.users), server.applied_index)


async def test_defrag_shrinks_the_file_and_keeps_everything(tmp_path):
    cfg = config(str(tmp_path / "m"))
    server = await leader(cfg)
    try:
        lease = (await server.lease_grant(rpc_pb2.LeaseGrantRequest(TTL=600))).ID
        await server.put(rpc_pb2.PutRequest(key=b"leased", value=b"v", lease=lease))
        await server.user_add(rpc_pb2.AuthUserAddRequest(name="alice", password="secret"))
        await put(server, b"kept")
        await fill_and_compact(server, 2000)
        await server.alarm(rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE,
                                                memberID=server.member_id, alarm=rpc_pb2.CORRUPT))
        before, size, in_use = state(server), server.backend.size(), server.backend.size_in_use()
        expiry = server.lessor.leases[lease].expiry
        await defragment(server)
        assert state(server) == before
        assert server.lessor.leases[lease].expiry == expiry  # a defrag does not extend leases
        assert server.backend.size() < size / 4
        assert server.backend.size_in_use() <= in_use + 2 * 4096  # (rewritten: page splits may differ)
        await server.alarm(rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.DEACTIVATE,
                                                memberID=server.member_id, alarm=rpc_pb2.CORRUPT))
        assert await put(server, b"after") == before[0] + 1
        after = state(server)
    finally:
        await server.stop()
    restarted = await leader(cfg)
    try:
        assert state(restarted)[:5] == after[:5]
    finally:
        await restarted.stop()


async def test_requests_arriving_during_a_defrag_wait_and_succeed(tmp_path):
    cfg = config(str(tmp_path / "m"))
    server = await leader(cfg)
    try:
        await fill_and_compact(server, 500)
        writes = [asyncio.create_task(put(server, b"w%03d" % i)) for i in range(100)]
        await asyncio.sleep(0)  # (some proposed before the defrag, the rest while it runs)
        reads = [asyncio.create_task(server.range(rpc_pb2.RangeRequest(key=b"w000"))) for _ in range(10)]
        copy = asyncio.create_task(server.snapshot_copy())  # a worker thread reads the backend
        await asyncio.gather(defragment(server), defragment(server))
        path, meta = await copy
        assert meta.index > 0 and os.path.getsize(path) > 0
        os.remove(path)
        revisions = await asyncio.gather(*writes)
        await asyncio.gather(*reads)
        stored = {kv.key: kv.mod_revision for kv in server.applier.range(rpc_pb2.RangeRequest(**ALL)).kvs}
        assert all(stored[b"w%03d" % i] == rev for i, rev in enumerate(revisions))
        assert len(set(revisions)) == len(revisions)
    finally:
        await server.stop()


class HeldCopy(CompactCopy):
    """A copy that, once made, waits in its worker thread until the test lets it go on."""
    made = threading.Event()
    go_on = threading.Event()

    def __init__(self, *args) -> None:
        super().__init__(*args)
        HeldCopy.made.set()
        assert HeldCopy.go_on.wait(30), "the test never let the defrag go on"


@pytest.fixture
def held_copy(monkeypatch):
    HeldCopy.made.clear()
    HeldCopy.go_on.clear()
    monkeypatch.setattr(defrag, "CompactCopy", HeldCopy)
    yield HeldCopy
    HeldCopy.go_on.set()


async def test_the_member_serves_during_a_defrag_and_the_copy_catches_up(tmp_path, held_copy):
    cfg = config(str(tmp_path / "m"))
    server = await leader(cfg)
    try:
        lease = (await server.lease_grant(rpc_pb2.LeaseGrantRequest(TTL=600))).ID
        await server.put(rpc_pb2.PutRequest(key=b"long/" + b"b" * 600, value=b"before"))
        await fill_and_compact(server, 1500)
        running = asyncio.create_task(defragment(server))
        async with asyncio.timeout(30):
            while not held_copy.made.is_set():
                await asyncio.sleep(0.01)
        # the copy is made; everything below happens after it, while the defrag runs: more
        # changed keys than one pass takes at the end, in every bucket that changes
        long_key = b"long/" + b"k" * 600  # (the key index keeps long keys apart)
        for i in range(defrag.FINAL_CHANGES + 500):
            await server.put(rpc_pb2.PutRequest(key=b"during/%05d" % i, value=b"v%d" % i))
        await server.put(rpc_pb2.PutRequest(key=long_key, value=b"long", lease=lease))
        await server.put(rpc_pb2.PutRequest(key=b"during/00000", value=b"overwritten"))
        await server.delete_range(rpc_pb2.DeleteRangeRequest(key=b"during/00001"))
        revoked = (await server.lease_grant(rpc_pb2.LeaseGrantRequest(TTL=600))).ID
        await server.lease_revoke(rpc_pb2.LeaseRevokeRequest(ID=revoked))
        await server.user_add(rpc_pb2.AuthUserAddRequest(name="bob", password="pw"))
        resp = await server.delete_range(rpc_pb2.DeleteRangeRequest(key=b"during/01", range_end=b"during/02"))
        await server.compact(rpc_pb2.CompactionRequest(revision=resp.header.revision, physical=True))
        assert not running.done()  # all of it answered while the defrag was under way
        before = state(server)
        hash_before = (await server.hash_kv(rpc_pb2.HashKVRequest())).hash
        held_copy.go_on.set()
        await running
        assert state(server) == before
        assert (await server.hash_kv(rpc_pb2.HashKVRequest())).hash == hash_before
        assert not [name for name in os.listdir(cfg.snap_dir) if "defrag" in name]
    finally:
        await server.stop()
    restarted = await leader(cfg)
    try:
        assert state(restarted)[:5] == before[:5]
        kv = restarted.applier.range(rpc_pb2.RangeRequest(key=long_key)).kvs[0]
        assert (kv.value, kv.lease) == (b"long", lease)
    finally:
        await restarted.stop()


def abandon(server: EtcdServer) -> None:
    """The process died: LMDB drops what was not committed, nothing more is written at the stop."""
    if server.backend.env is not None:
        server.backend.env.close()
        server.backend.env = None
    server.backend = types.SimpleNamespace(checkpoint=lambda: 0, close=lambda: None, commit=lambda: None)


async def test_a_crash_at_any_step_of_the_swap_keeps_every_acknowledged_write(tmp_path):
    disk = CrashingDisk()
    # count the disk operations of one defrag, then crash at each of them in turn
    cfg = config(str(tmp_path / "count"))
    server = await _started(cfg, disk)
    await put(server, b"kept")
    await fill_and_compact(server, 50)
    start = disk.calls
    await defragment(server)
    steps = disk.calls - start
    await server.stop()
    assert steps > 5
    for step in range(1, steps + 1):
        for power_loss in (False, True):
            cfg = config(str(tmp_path / f"s{step}-{power_loss}"))
            disk = CrashingDisk()
            server = await _started(cfg, disk)
            await put(server, b"kept")
            await fill_and_compact(server, 50)
            acked = state(server)
            disk.crash_at = disk.calls + step
            try:
                await defragment(server)
            except OSError:
                pass
            else:
                raise AssertionError(f"no crash at step {step}")
            abandon(server)
            await server.stop()
            disk.crash_at = None
            if power_loss:
                disk.boot = "boot-2"
            restarted = await _started(cfg, disk)
            try:
                assert state(restarted)[:5] == acked[:5], f"step {step}, power loss {power_loss}"
                assert await put(restarted, b"after") == acked[0] + 1
                await defragment(restarted)
                assert keys(restarted) == [b"after", b"kept"]
            finally:
                await restarted.stop()


async def _started(cfg, disk: CrashingDisk) -> EtcdServer:
    server = EtcdServer(cfg, Platform(fs=disk))
    await server.start()
    async with asyncio.timeout(10):
        while not server.is_leader:
            await asyncio.sleep(0.01)
    await server.range(rpc_pb2.RangeRequest(key=b"kept"))  # linearizable: what the WAL holds is applied
    return server
