"""The member where Raft meets the disk, the snapshot stream and the restart: regression tests
for defects a reader found in them (issue "Core hardening"). Members run in this process, on
127.0.0.1 free ports; the whole-member simulation (tests/sim) tries the same seams at random."""
from __future__ import annotations

import asyncio
import os
import types

import lmdb
import pytest

from pyetcd import errors
from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd.proto.raftpb import raft_pb2
from pyetcd.server import bootstrap, snapshot
from pyetcd.server.config import ConfigError, ServerConfig
from pyetcd.server.etcdserver import EtcdServer
from pyetcd.server.platform import Platform
from pyetcd.storage.backend import Backend
from pyetcd.storage.mvcc import KVStore
from pyetcd.wal import WAL
from servers import free_port

Req = raft_internal_pb2.InternalRaftRequest


def config(data_dir: str, peers: int = 1) -> ServerConfig:
    """One member (infra0) of a cluster of ``peers`` founders; only infra0 ever runs here."""
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(peers)]
    return ServerConfig({
        "name": "infra0", "data-dir": data_dir, "listen-client-urls": [], "advertise-client-urls": [],
        "listen-peer-urls": [urls[0]], "initial-advertise-peer-urls": [urls[0]],
        "initial-cluster": ",".join(f"infra{i}={u}" for i, u in enumerate(urls)),
        "heartbeat-interval": 10, "election-timeout": 100})


async def started(cfg: ServerConfig) -> EtcdServer:
    server = EtcdServer(cfg)
    await server.start()
    return server


async def leader(cfg: ServerConfig) -> EtcdServer:
    server = await started(cfg)
    async with asyncio.timeout(10):
        while not server.is_leader:
            await asyncio.sleep(0.01)
    return server


async def put(server: EtcdServer, key: bytes) -> int:
    return (await server.put(rpc_pb2.PutRequest(key=key, value=b"v"))).header.revision


def keys(server: EtcdServer) -> list[bytes]:
    return [kv.key for kv in server.applier.range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0")).kvs]


def snapshot_message(meta: raft_pb2.SnapshotMetadata, term: int, sender: int = 0xbeef) -> bytes:
    return raft_pb2.Message(type=raft_pb2.MsgSnap, from_=sender, term=term,
                            snapshot=raft_pb2.Snapshot(metadata=meta)).SerializeToString()


async def test_a_snapshot_older_than_the_database_never_replaces_it(tmp_path):
    """Raft judges first: a stale stream (a deposed leader's, or one overtaken by newer entries)
    is dropped, even from a higher term, and the database stays as it is."""
    server = await leader(config(str(tmp_path / "m")))
    try:
        for i in range(3):
            await put(server, b"old%d" % i)
        path, meta = await server.snapshot_copy()
        for i in range(3):
            await put(server, b"new%d" % i)
        applied = server.applied_index
        spooled = os.path.join(server.cfg.snap_dir, "spooled.tmp")
        os.replace(path, spooled)
        await server._on_snapshot(0xbeef, snapshot_message(meta, server.raft.term + 1), spooled)
        await asyncio.sleep(0.05)  # let the Ready loop run
        assert server.store.consistent_index == applied
        assert keys(server) == [b"new0", b"new1", b"new2", b"old0", b"old1", b"old2"]
    finally:
        await server.stop()


async def test_the_snapshot_message_describes_the_copy_it_travels_with(tmp_path):
    server = await leader(config(str(tmp_path / "m")))
    try:
        await put(server, b"k")
        path, meta = await server.snapshot_copy()
        assert (meta.index, meta.term) == (server.applied_index, server.raft.term)
        assert list(meta.conf_state.voters) == [server.member_id]
        wrong = raft_pb2.SnapshotMetadata()
        wrong.CopyFrom(meta)
        wrong.index += 1
        with pytest.raises(snapshot.SnapshotRefused):
            await server._on_snapshot(0xbeef, snapshot_message(wrong, server.raft.term), path)
        os.unlink(path)
        await put(server, b"after")  # the backend was never touched
        assert keys(server) == [b"after", b"k"]
    finally:
        await server.stop()


async def test_received_snapshots_are_spooled_beside_the_backend(tmp_path):
    """Renaming a spooled copy from /tmp into the data dir fails with EXDEV on another file
    system (tmpfs /tmp, containers): spool where the backend lives."""
    server = await started(config(str(tmp_path / "m")))
    try:
        assert server.transport._ctx.options.snapshot_dir == os.path.dirname(server.cfg.backend_path)
    finally:
        await server.stop()


async def test_a_proposal_raft_drops_fails_at_once(tmp_path):
    server = await started(config(str(tmp_path / "m"), peers=3))  # the other two never start
    try:
        async with asyncio.timeout(server.request_timeout / 2):
            with pytest.raises(errors.EtcdError) as failure:
                await put(server, b"k")
        assert isinstance(failure.value, errors.ErrNoLeader)
    finally:
        await server.stop()


async def test_a_request_applies_from_the_logged_bytes_and_only_its_own_answers_it(tmp_path):
    server = await leader(config(str(tmp_path / "m")))
    try:
        mine = Req(ID=42, put=rpc_pb2.PutRequest(key=b"mine", value=b"v"))
        other = Req(ID=42, put=rpc_pb2.PutRequest(key=b"other", value=b"v"))  # another member's, same ID
        fut = asyncio.get_running_loop().create_future()
        server._waiting[42] = (fut, mine.SerializeToString())
        index = server.applied_index + 1
        server.apply([raft_pb2.Entry(term=server.raft.term, index=index, data=other.SerializeToString())])
        assert not fut.done() and b"other" in keys(server)
        server._waiting.pop(42)
    finally:
        await server.stop()


async def test_fences_are_forgotten_once_their_request_can_no_longer_apply(tmp_path):
    server = await leader(config(str(tmp_path / "m")))
    try:
        base = server.applied_index
        fence = lambda rid, max_index, fid: Req(ID=fid, fence=raft_internal_pb2.Fence(  # noqa: E731
            request_id=rid, max_index=max_index))
        entries = [fence(7, base + 2, 100), fence(8, base + 1000, 101), fence(9, 0, 102)]
        server.apply([raft_pb2.Entry(term=server.raft.term, index=base + 1 + i, data=e.SerializeToString())
                      for i, e in enumerate(entries)])
        assert set(server._fenced) == {8, 9}  # 7 could apply only up to base + 2
        with server.store.read() as view:
            kept = [k for k, _ in view.txn.cursor(db=server.backend.db("meta")) if k.startswith(b"fence/")]
        assert len(kept) == 2
        late = Req(ID=8, put=rpc_pb2.PutRequest(key=b"late", value=b"v"))
        server.apply([raft_pb2.Entry(term=server.raft.term, index=base + 4, data=late.SerializeToString())])
        assert b"late" not in keys(server)
    finally:
        await server.stop()


async def test_restart_refuses_a_backend_ahead_of_the_wal(tmp_path):
    cfg = config(str(tmp_path / "m"))
    server = await leader(cfg)
    await put(server, b"k")
    await server.stop()
    backend = Backend(cfg.backend_path)
    backend.set_consistent_index(backend.write_txn(), 10_000, 2)
    backend.close()
    with pytest.raises(ConfigError, match="beyond the WAL's last index"):
        await started(cfg)


async def test_restart_refuses_a_backend_behind_the_wals_snapshot(tmp_path):
    cfg = config(str(tmp_path / "m"))
    server = await leader(cfg)
    await put(server, b"k")
    last = server.applied_index
    await server.stop()
    with WAL.open(cfg.wal_dir) as wal:
        wal.save_snapshot(last + 5, 9, discard_log=True)  # a received snapshot whose database is gone
    with pytest.raises(ConfigError, match="behind the WAL's snapshot"):
        await started(cfg)


async def test_restart_finishes_an_interrupted_snapshot_install(tmp_path):
    """Crash after the WAL marker, before the database swap: the restart swaps the stash in."""
    cfg = config(str(tmp_path / "m"))
    server = await leader(cfg)
    for i in range(3):
        await put(server, b"k%d" % i)
    path, meta = await server.snapshot_copy()
    await put(server, b"after-copy")
    await server.stop()
    # As if a leader's snapshot at a later index had been accepted: stash + discarding marker.
    stash = snapshot.stash_path(cfg.snap_dir, meta.index + 100, meta.term + 1)
    env = lmdb.open(path, subdir=False, max_dbs=16, lock=False)  # the copy, made to say so
    with env.begin(write=True) as txn:
        meta_db = env.open_db(b"meta", txn=txn)
        txn.put(b"consistent_index", (meta.index + 100).to_bytes(8, "big"), db=meta_db)
        txn.put(b"term", (meta.term + 1).to_bytes(8, "big"), db=meta_db)
    env.close()
    os.replace(path, stash)
    with WAL.open(cfg.wal_dir) as wal:
        wal.save_snapshot(meta.index + 100, meta.term + 1, discard_log=True)
    restarted = await started(cfg)
    try:
        assert restarted.applied_index == meta.index + 100
        assert keys(restarted) == [b"k0", b"k1", b"k2"]  # the snapshot's data, not the old backend's
        assert not os.path.exists(stash)
    finally:
        await restarted.stop()


async def test_a_founder_whose_first_start_died_before_its_boot_snapshot_starts_again(tmp_path):
    """Found by the whole-member simulation (F2): a crash between the WAL's creation and its
    boot snapshot marker left a member that refused every restart."""
    cfg = config(str(tmp_path / "m"))
    os.makedirs(cfg.snap_dir)
    WAL.create(cfg.wal_dir, bootstrap.wal_metadata(123, 456)).close()
    server = await leader(cfg)
    try:
        assert await put(server, b"k") == 2
    finally:
        await server.stop()


async def test_a_joined_member_restarted_before_its_first_snapshot_still_knows_the_others(tmp_path):
    """Found by the whole-member simulation (F3): it knew its peers only from fetch_cluster, so
    after a restart it could not answer the leader and never got its snapshot."""
    cfg = config(str(tmp_path / "m"))
    os.makedirs(cfg.snap_dir)
    others = [rpc_pb2.Member(ID=7, name="a", peerURLs=["http://127.0.0.1:1"])]
    with WAL.create(cfg.wal_dir, bootstrap.wal_metadata(9, 456, others)) as wal:
        wal.save(raft_pb2.HardState(term=3, vote=7), [])
    boot = await bootstrap.bootstrap(cfg, Platform())
    try:
        assert (boot.member_id, boot.cluster_id, boot.peers) == (9, 456, others)
        assert boot.storage.hard_state.vote == 7  # its vote is kept
    finally:
        boot.wal.close()
        boot.backend.close()


async def test_the_backend_batch_a_crash_takes_is_replayed_from_the_wal(tmp_path):
    """Applied requests wait in the backend's batch until it commits: a process dying meanwhile
    loses them from LMDB, and the restart applies them again from the WAL."""
    cfg = config(str(tmp_path / "m"))
    cfg.values["backend-batch-interval"] = "1h"
    server = await leader(cfg)
    await put(server, b"committed")
    server.backend.commit()
    await put(server, b"batched")
    assert server.backend.pending is not None and keys(server) == [b"batched", b"committed"]
    server.backend.env.close()  # the process dies: LMDB drops the open batch
    server.backend = types.SimpleNamespace(checkpoint=lambda: 0, close=lambda: None, commit=lambda: None)
    await server.stop()
    left = Backend(cfg.backend_path)
    try:
        assert KVStore(left).rev == 2  # only "committed" reached LMDB
    finally:
        left.close()
    restarted = await leader(cfg)
    try:
        resp = await restarted.range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"))  # linearizable
        assert [kv.key for kv in resp.kvs] == [b"batched", b"committed"]
    finally:
        await restarted.stop()


async def test_the_applied_index_is_recorded_for_entries_that_change_nothing(tmp_path):
    """Found by the whole-member simulation (F6): a snapshot at a leader's empty entry was ahead
    of the backend's applied index, and the member refused every restart after it."""
    server = await leader(config(str(tmp_path / "m")))
    try:
        index = server.applied_index + 1
        server.apply([raft_pb2.Entry(term=server.raft.term, index=index)])  # a new leader's empty entry
        assert server.store.consistent_index == index
    finally:
        await server.stop()


def test_a_swap_whose_stash_is_already_the_data_file_removes_the_stash(tmp_path):
    """Found by the whole-member simulation (F5): a power loss undid only the stash's removal;
    each later start swapped the 'stash' in again, dropping the data file's checkpoint."""
    from pyetcd.fileutil import OS
    db = tmp_path / "snap" / "db"
    db.mkdir(parents=True)
    (db / "data.mdb").write_bytes(b"database")
    stash = tmp_path / "snap" / "0000000000000002-0000000000000009.snap.db"
    os.link(db / "data.mdb", stash)
    snapshot.swap_in(OS, str(stash), str(db))
    assert not stash.exists() and (db / "data.mdb").read_bytes() == b"database"


async def test_a_founder_whose_first_start_died_before_its_boot_marker_starts_again_at_term_one(tmp_path):
    """sim F9: the boot hard state (term 1) is written before the boot marker, so a WAL with the
    marker always has it."""
    cfg = config(str(tmp_path / "m"))
    os.makedirs(cfg.snap_dir)
    with WAL.create(cfg.wal_dir, bootstrap.wal_metadata(123, 456)) as wal:
        wal.save(raft_pb2.HardState(term=1, commit=1), [])  # died here, before the marker
    boot = await bootstrap.bootstrap(cfg, Platform())
    try:
        assert boot.storage.hard_state.term == 1 and boot.storage.snapshot().metadata.index == 1
    finally:
        boot.wal.close()
        boot.backend.close()


async def test_a_member_hearing_from_a_member_it_does_not_know_learns_its_urls(tmp_path):
    """sim F11: restarted with a member list older than the leader (added while it was down), a
    member heard the leader but could not answer it."""
    newcomer = rpc_pb2.Member(ID=0xC0FFEE, name="new", peerURLs=[f"http://127.0.0.1:{free_port()}"])
    asked = []

    async def fetch_cluster(urls, *, wanted=None):
        members = [*server.membership.sorted_members(), newcomer]
        asked.append((urls, wanted(members), wanted(members[:-1])))
        return server.cluster_id, members

    cfg = config(str(tmp_path / "m"), peers=2)
    server = EtcdServer(cfg, Platform(fetch_cluster=fetch_cluster))
    await server.start()
    try:
        hello = raft_pb2.Message(type=raft_pb2.MsgAppResp, from_=newcomer.ID, to=server.member_id,
                                 term=server.raft.term)
        server._on_peer_message(newcomer.ID, hello.SerializeToString())
        await server._peer_lookup
        assert newcomer.ID in server.transport.peers()
        urls, wanted_with_sender, wanted_without = asked[0]
        assert all("127.0.0.1" in url for url in urls)  # it asked the members it knows
        assert wanted_with_sender and not wanted_without  # ... on past one that does not know the sender
    finally:
        await server.stop()


async def test_a_joining_member_asks_on_past_a_peer_that_has_not_applied_its_addition(tmp_path):
    """sim F12: restarted soon after `member add`, a newcomer asked a peer that had not applied
    the addition yet and stopped ("add it first") although the cluster had it."""
    cfg = config(str(tmp_path / "m"), peers=2)
    cfg = ServerConfig({**cfg.values, "initial-cluster-state": "existing"})
    mine = cfg["initial-advertise-peer-urls"]
    founder = rpc_pb2.Member(ID=7, name="infra1", peerURLs=["http://127.0.0.1:1"])
    newcomer = rpc_pb2.Member(ID=9, peerURLs=mine)
    behind, ahead = [founder], [founder, newcomer]

    def fetcher(*answers: list[rpc_pb2.Member]):
        async def fetch_cluster(urls, *, wanted=None):
            return 456, next((a for a in answers if wanted(a)), answers[-1])
        return fetch_cluster

    os.makedirs(cfg.snap_dir)
    boot = await bootstrap.bootstrap(cfg, Platform(fetch_cluster=fetcher(behind, ahead)))
    try:
        assert (boot.member_id, boot.cluster_id, boot.peers) == (9, 456, [founder])
    finally:
        boot.wal.close()
        boot.backend.close()
    cfg = ServerConfig({**config(str(tmp_path / "n"), peers=2).values, "initial-cluster-state": "existing"})
    os.makedirs(cfg.snap_dir)
    with pytest.raises(ConfigError, match="add it first with `etcdctl member add`"):
        await bootstrap.bootstrap(cfg, Platform(fetch_cluster=fetcher(behind)))


async def test_a_conf_change_of_the_ready_in_flight_is_not_applied_over_an_accepted_snapshot(tmp_path):
    """Defect 7: a Ready's committed entries apply after its WAL save; a snapshot Raft accepted
    meanwhile already holds their outcome and what came after (here: the member added was removed
    again). Applying the old conf change on top brought a phantom voter into Raft's quorum."""
    source = await leader(config(str(tmp_path / "a")))
    receiver = await leader(config(str(tmp_path / "b")))
    try:
        for i in range(8):
            await put(source, b"k%d" % i)
        path, meta = await source.snapshot_copy()
        assert meta.index > receiver.applied_index + 1
        spooled = os.path.join(receiver.cfg.snap_dir, "spooled.tmp")
        os.replace(path, spooled)
        await receiver._on_snapshot(0xbeef, snapshot_message(meta, receiver.raft.term + 1), spooled)
        # (no await since: the Ready loop has not installed it yet, as with a Ready in flight)
        conf = lambda: receiver.raft.node.raft.prs.conf_state()  # noqa: E731
        assert list(conf().voters) == [source.member_id] and not conf().learners
        gone = rpc_pb2.Member(ID=0x1234, peerURLs=["http://127.0.0.1:1"])
        change = Req(ID=77, member_change=raft_internal_pb2.MemberChange(
            kind=raft_internal_pb2.MemberChange.ADD, member=gone))
        cc = raft_pb2.ConfChange(type=raft_pb2.ConfChangeAddNode, node_id=gone.ID,
                                 context=change.SerializeToString(), id=77)
        receiver.apply([raft_pb2.Entry(type=raft_pb2.EntryConfChange, term=receiver.raft.term,
                                       index=receiver.applied_index + 1, data=cc.SerializeToString())])
        assert list(conf().voters) == [source.member_id] and not conf().learners
    finally:
        await receiver.stop()
        await source.stop()
