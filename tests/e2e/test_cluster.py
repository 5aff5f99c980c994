"""3-member pyetcd clusters on loopback: replication, failover, catch-up, quorum loss, membership."""
from __future__ import annotations

import time

import grpc
import pytest

from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from servers import wait_for, PYETCD, Server, cluster, etcdctl, have_ref, ref_bin, start_all


def kv(member: Server) -> rpc_pb2_grpc.KVStub:
    return rpc_pb2_grpc.KVStub(grpc.insecure_channel(member.endpoint))


def status(member: Server) -> rpc_pb2.StatusResponse:
    with grpc.insecure_channel(member.endpoint) as ch:
        return rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=5)



def hash_kv(member: Server, rev: int) -> int:
    with grpc.insecure_channel(member.endpoint) as ch:
        return rpc_pb2_grpc.MaintenanceStub(ch).HashKV(rpc_pb2.HashKVRequest(revision=rev), timeout=5).hash


def leader_of(members: list[Server]) -> Server:
    alive = [m for m in members if m.proc and m.proc.poll() is None]
    lead = wait_for(lambda: status(alive[0]).leader, 10, "a leader")
    return next(m for m in alive if status(m).header.member_id == lead)


def get(member: Server, key: bytes, serializable: bool = False) -> bytes | None:
    resp = kv(member).Range(rpc_pb2.RangeRequest(key=key, serializable=serializable), timeout=5)
    return resp.kvs[0].value if resp.kvs else None


@pytest.fixture
def three(tmp_path):
    members = cluster(PYETCD, str(tmp_path), 3, extra=["--snapshot-count", "20",
                                                        "--experimental-snapshot-catchup-entries", "10"])
    try:
        start_all(members)
        yield members
    finally:
        for m in members:
            m.stop()


def test_replication_failover_and_catch_up(three):
    a, b, c = three
    kv(a).Put(rpc_pb2.PutRequest(key=b"k", value=b"v1"), timeout=5)
    assert get(b, b"k") == b"v1"  # linearizable read on another member
    # a member that was down catches up from the leader's log
    follower = next(m for m in three if m is not leader_of(three))
    follower.kill()
    survivor = next(m for m in three if m is not follower)
    kv(survivor).Put(rpc_pb2.PutRequest(key=b"k", value=b"v2"), timeout=5)
    follower.start()
    wait_for(lambda: get(follower, b"k", serializable=True) == b"v2", 30, "the follower to catch up")

    # the leader dies: a new one within 3 s, writes go on
    old = leader_of(three)
    old_id = status(old).header.member_id
    old.kill()
    killed = time.monotonic()
    rest = [m for m in three if m is not old]
    wait_for(lambda: status(rest[0]).leader not in (0, old_id), 10, "a new leader")
    assert time.monotonic() - killed < 3.0
    assert leader_of(rest) is not old
    for i in range(60):  # enough entries for snapshots and log compaction past the old leader
        kv(rest[i % 2]).Put(rpc_pb2.PutRequest(key=b"n%d" % i, value=b"x"), timeout=5)
    old.start()
    wait_for(lambda: get(old, b"n59", serializable=True) == b"x", 30, "the old leader to catch up")
    assert "receiving database snapshot" in open(old.log_path).read()
    assert get(old, b"k") == b"v2"
    # the same history on every member, the one restored from a snapshot included
    rev = kv(old).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=5).header.revision
    hashes = {m.name: hash_kv(m, rev) for m in three}
    assert len(set(hashes.values())) == 1, hashes
    # and it restarts from the snapshot it received plus its WAL
    assert old.stop() == 0
    old.start()
    wait_for(lambda: get(old, b"n59", serializable=True) == b"x", 30, "the restarted member's data")
    assert hash_kv(old, rev) == hashes[old.name]


def test_quorum_loss_stops_writes_and_recovery_keeps_them(three):
    acked = {}
    for i in range(5):
        kv(three[i % 3]).Put(rpc_pb2.PutRequest(key=b"q%d" % i, value=b"%d" % i), timeout=5)
        acked[b"q%d" % i] = b"%d" % i
    survivor, *others = three
    for m in others:
        m.kill()
    with pytest.raises(grpc.RpcError) as err:
        kv(survivor).Put(rpc_pb2.PutRequest(key=b"lost", value=b"x"), timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert err.value.details() in ("etcdserver: request timed out", "etcdserver: no leader")
    for m in others:
        m.start(wait=False)
    for m in three:
        m.wait_ready(30)
    kv(others[0]).Put(rpc_pb2.PutRequest(key=b"after", value=b"y"), timeout=10)
    for key, value in acked.items():
        assert get(others[1], key) == value
    assert get(survivor, b"after") == b"y"


@pytest.mark.skipif(not have_ref(), reason="needs real etcdctl 3.5.1")
def test_move_leader_and_member_commands_with_real_etcdctl(three):
    ctl = [ref_bin("etcdctl")]
    lead = leader_of(three)
    target = next(m for m in three if m is not lead)
    target_id = f"{status(target).header.member_id:x}"
    out = etcdctl(ctl, ",".join(m.endpoint for m in three), "move-leader", target_id)
    assert out.returncode == 0, out.stderr
    assert f"to {target_id}" in out.stdout
    assert leader_of(three) is target

    added = etcdctl(ctl, lead.endpoint, "member", "add", "infra9", "--learner", "--peer-urls=http://127.0.0.1:1")
    assert added.returncode == 0, added.stderr
    new_id = added.stdout.split()[1]
    listed = etcdctl(ctl, lead.endpoint, "member", "list")
    assert f"{new_id}, unstarted, , http://127.0.0.1:1, , true" in listed.stdout
    promote = etcdctl(ctl, lead.endpoint, "member", "promote", new_id)
    assert promote.returncode == 1
    assert "can only promote a learner member which is in sync with leader" in promote.stderr
    removed = etcdctl(ctl, lead.endpoint, "member", "remove", new_id)
    assert removed.returncode == 0, removed.stderr
    again = etcdctl(ctl, lead.endpoint, "member", "remove", new_id)
    assert again.returncode == 1 and "member not found" in again.stderr


def test_whole_cluster_restarts_with_its_data(three):
    for i in range(50):  # past --snapshot-count: restarts resume from snapshot + WAL
        kv(three[i % 3]).Put(rpc_pb2.PutRequest(key=b"r%d" % i, value=b"%d" % i), timeout=5)
    rev = kv(three[0]).Range(rpc_pb2.RangeRequest(key=b"r49"), timeout=5).kvs[0].mod_revision
    for m in three:
        assert m.stop() == 0
    start_all(three)
    kv(three[1]).Put(rpc_pb2.PutRequest(key=b"after", value=b"restart"), timeout=10)
    for m in three:
        resp = kv(m).Range(rpc_pb2.RangeRequest(key=b"r", range_end=b"s"), timeout=10)
        assert len(resp.kvs) == 50
        assert max(kv_.mod_revision for kv_ in resp.kvs) == rev
        assert get(m, b"after") == b"restart"
    with grpc.insecure_channel(three[2].endpoint) as ch:
        members = rpc_pb2_grpc.ClusterStub(ch).MemberList(rpc_pb2.MemberListRequest(), timeout=5).members
    assert sorted(m.name for m in members) == ["infra0", "infra1", "infra2"]


@pytest.mark.parametrize("cmd", ["etcd-3.5.1", "pyetcd"])
def test_a_leader_stopped_gracefully_hands_leadership_over(tmp_path, cmd):
    """SIGTERM on the leader: before it goes it moves leadership to a follower (etcd's log lines), so
    the others have a leader at once and a write on them needs no election timeout."""
    if cmd == "etcd-3.5.1" and not have_ref():
        pytest.skip("real etcd 3.5.1 binaries not installed (make ref)")
    members = cluster([ref_bin("etcd")] if cmd == "etcd-3.5.1" else PYETCD, str(tmp_path), 3)
    try:
        start_all(members)
        leader = leader_of(members)
        leader_id = status(leader).header.member_id
        leader.stop()
        with open(leader.log_path) as f:
            lines = [line for line in f if "leadership transfer" in line]
        assert len(lines) == 2 and '"msg":"leadership transfer starting"' in lines[0], lines
        assert '"msg":"leadership transfer finished"' in lines[1], lines
        transferee = lines[0].split('"transferee-member-id":"')[1].split('"')[0]
        rest = [m for m in members if m is not leader]
        for m in rest:
            assert f"{status(m).leader:x}" == transferee and status(m).leader != leader_id
        kv(rest[0]).Put(rpc_pb2.PutRequest(key=b"after", value=b"stop"), timeout=5)
        assert get(rest[1], b"after") == b"stop"
    finally:
        for m in members:
            m.stop()
