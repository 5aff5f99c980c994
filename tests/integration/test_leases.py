"""Leases on pyetcd processes: expiry timing, restarts, leader changes, forwarding, snapshots.

Times are measured with deadlines around the server's promises: a lease's keys vanish no earlier
than TTL after the last keep-alive was sent, and within TTL + 1 s of its answer."""
from __future__ import annotations

import threading
import time

import grpc
import pytest

from pyetcd.proto.etcdserverpb import rpc_pb2 as P, rpc_pb2_grpc
from pyetcd.proto.mvccpb import kv_pb2
from servers import PYETCD, Server, cluster, start_all, wait_for

# a checkpoint a second, so a leader change or restart shows whether the remaining TTL was kept
CHECKPOINT_FLAGS = ["--experimental-lease-checkpoint-interval", "1s"]


def stub(member: Server, kind):
    return kind(grpc.insecure_channel(member.endpoint))


def leases(member: Server) -> rpc_pb2_grpc.LeaseStub:
    return stub(member, rpc_pb2_grpc.LeaseStub)


def kv(member: Server) -> rpc_pb2_grpc.KVStub:
    return stub(member, rpc_pb2_grpc.KVStub)


def grant(member: Server, ttl: int) -> int:
    return leases(member).LeaseGrant(P.LeaseGrantRequest(TTL=ttl), timeout=10).ID


def keep_alive(member: Server, lease_id: int) -> P.LeaseKeepAliveResponse:
    [resp] = list(leases(member).LeaseKeepAlive(iter([P.LeaseKeepAliveRequest(ID=lease_id)]), timeout=10))
    return resp


def ttl_of(member: Server, lease_id: int, keys: bool = False) -> P.LeaseTimeToLiveResponse:
    return leases(member).LeaseTimeToLive(P.LeaseTimeToLiveRequest(ID=lease_id, keys=keys), timeout=10)


def value(member: Server, key: bytes) -> bytes | None:
    resp = kv(member).Range(P.RangeRequest(key=key, serializable=True), timeout=10)
    return resp.kvs[0].value if resp.kvs else None


def status(member: Server) -> P.StatusResponse:
    return stub(member, rpc_pb2_grpc.MaintenanceStub).Status(P.StatusRequest(), timeout=5)


def leader_of(members: list[Server]) -> Server:
    """The leader among ``members``, once the first of them knows one there."""
    def find() -> Server | None:
        lead = status(members[0]).leader
        return next((m for m in members if status(m).header.member_id == lead), None)
    return wait_for(find, 15, "a leader among the members")


@pytest.fixture
def single(tmp_path):
    server = Server(PYETCD, str(tmp_path / "one.etcd"), extra=CHECKPOINT_FLAGS)
    try:
        yield server.start()
    finally:
        server.stop()


def test_keys_vanish_within_ttl_plus_one_second_of_the_last_keep_alive_and_never_before(single):
    ttl = 3
    lease_id = grant(single, ttl)
    kv(single).Put(P.PutRequest(key=b"k", value=b"v", lease=lease_id), timeout=10)
    for _ in range(3):  # keep-alives hold it past its TTL
        sent = time.monotonic()
        resp = keep_alive(single, lease_id)
        answered = time.monotonic()
        assert (resp.ID, resp.TTL) == (lease_id, ttl)
        time.sleep(ttl / 2)  # (the next keep-alive's timing, not a wait for an outcome)
        assert value(single, b"k") == b"v"
    sent = time.monotonic()
    keep_alive(single, lease_id)
    answered = time.monotonic()
    deadline = answered + ttl + 1
    while value(single, b"k") is not None:
        assert time.monotonic() < deadline, "the key outlived its lease by more than 1 s"
        time.sleep(0.02)
    assert time.monotonic() >= sent + ttl, "the key vanished before its lease's TTL"
    assert ttl_of(single, lease_id).TTL == -1
    assert keep_alive(single, lease_id).TTL == 0


@pytest.mark.parametrize("crash", [False, True], ids=["stop", "kill"])
def test_a_restart_keeps_leases_attachments_and_the_remaining_ttl(single, crash):
    short, long_ = grant(single, 30), grant(single, 600)
    big_key = b"big/" + b"x" * 1000
    for key, lease_id in ((b"a", short), (big_key, short), (b"b", long_), (b"c", long_)):
        kv(single).Put(P.PutRequest(key=key, value=b"v", lease=lease_id), timeout=10)
    kv(single).Put(P.PutRequest(key=b"c", value=b"v2"), timeout=10)  # detached again
    wait_for(lambda: ttl_of(single, short).TTL <= 26, 15, "the short lease to run down")
    time.sleep(1.6)  # (one checkpoint interval and one lease check: a checkpoint at <= 26 s is logged)
    single.kill() if crash else single.stop()
    single.start()
    resp = ttl_of(single, short, keys=True)
    assert sorted(resp.keys) == sorted([b"a", big_key]) and resp.grantedTTL == 30
    assert 0 < resp.TTL <= 27 + 1  # the checkpointed remaining TTL + the 1 s election extension
    assert sorted(ttl_of(single, long_, keys=True).keys) == [b"b"]
    listed = leases(single).LeaseLeases(P.LeaseLeasesRequest(), timeout=10).leases
    assert sorted(status.ID for status in listed) == sorted([short, long_])
    leases(single).LeaseRevoke(P.LeaseRevokeRequest(ID=short), timeout=10)
    assert value(single, b"a") is None and value(single, big_key) is None and value(single, b"b") == b"v"


@pytest.fixture
def three(tmp_path):
    members = cluster(PYETCD, str(tmp_path), 3, extra=[*CHECKPOINT_FLAGS, "--snapshot-count", "20",
                                                        "--experimental-snapshot-catchup-entries", "10"])
    try:
        start_all(members)
        yield members
    finally:
        for m in members:
            m.stop()


def test_a_new_leader_keeps_the_remaining_ttl_and_keep_alive_works_through_a_follower(three):
    ttl = 15
    old = leader_of(three)
    follower = next(m for m in three if m is not old)
    lease_id = grant(follower, ttl)
    kv(follower).Put(P.PutRequest(key=b"k", value=b"v", lease=lease_id), timeout=10)
    wait_for(lambda: ttl_of(follower, lease_id).TTL <= 9, 15, "the lease to run down")
    time.sleep(1.6)  # (a checkpoint at <= 9 s is logged)
    old.kill()
    rest = [m for m in three if m is not old]
    new = leader_of(rest)
    remaining = ttl_of(new, lease_id).TTL
    assert 0 < remaining <= 11, f"the new leader gave the lease {remaining} s (full TTL {ttl} + 1)"
    # a keep-alive through a follower renews it at the leader
    other = next(m for m in rest if m is not new)
    sent = time.monotonic()
    resp = keep_alive(other, lease_id)
    assert (resp.ID, resp.TTL) == (lease_id, ttl)
    assert resp.header.member_id == status(other).header.member_id  # the follower's own header
    assert ttl_of(other, lease_id).TTL >= ttl - 2
    # left alone, it expires, and its key goes on every member, the old leader included
    old.start()
    deadline = time.monotonic() + ttl + 5
    for member in three:
        while value(member, b"k") is not None:
            assert time.monotonic() < deadline, f"the key outlived its lease on {member.name}"
            time.sleep(0.05)
    assert time.monotonic() >= sent + ttl
    assert ttl_of(old, lease_id).TTL == -1


def test_a_member_restored_from_a_snapshot_carries_leases_and_attachments(three):
    lead = leader_of(three)
    behind = next(m for m in three if m is not lead)
    behind.stop()
    kept, revoked = grant(lead, 600), grant(lead, 600)
    long_key = b"long/" + b"y" * 900
    for key, lease_id in ((b"p", kept), (long_key, kept), (b"q", revoked), (b"r", revoked)):
        kv(lead).Put(P.PutRequest(key=key, value=b"v", lease=lease_id), timeout=10)
    for i in range(60):  # past --snapshot-count and the catch-up entries: it needs a snapshot
        kv(lead).Put(P.PutRequest(key=b"n%d" % i, value=b"x"), timeout=10)
    behind.start()
    wait_for(lambda: value(behind, b"n59") == b"x", 30, "the member to catch up")
    assert "installed database snapshot" in open(behind.log_path).read()
    listed = leases(behind).LeaseLeases(P.LeaseLeasesRequest(), timeout=10).leases  # its own lessor
    assert sorted(s.ID for s in listed) == sorted([kept, revoked])
    # the revoke, applied by the restored member from its own attachments, deletes the keys there
    leases(lead).LeaseRevoke(P.LeaseRevokeRequest(ID=revoked), timeout=10)
    wait_for(lambda: value(behind, b"q") is None and value(behind, b"r") is None, 10, "the revoke to apply")
    # as leader, it knows the attachments it received
    target = status(behind).header.member_id
    stub(lead, rpc_pb2_grpc.MaintenanceStub).MoveLeader(P.MoveLeaderRequest(targetID=target), timeout=15)
    assert sorted(ttl_of(behind, kept, keys=True).keys) == sorted([b"p", long_key])


def test_a_revoke_reaches_watchers_as_deletes_of_one_revision(single):
    lease_id = grant(single, 600)
    for key in (b"w/b", b"w/a"):
        kv(single).Put(P.PutRequest(key=key, value=b"v", lease=lease_id), timeout=10)
    start = kv(single).Range(P.RangeRequest(key=b"w/a"), timeout=10).header.revision + 1
    create = P.WatchRequest(create_request=P.WatchCreateRequest(key=b"w/", range_end=b"w0", start_revision=start))
    done = threading.Event()

    def requests():
        yield create
        done.wait(20)  # (the stream stays open until the test has its events)
    watch = stub(single, rpc_pb2_grpc.WatchStub).Watch(requests(), timeout=20)
    try:
        assert next(watch).created
        rev = leases(single).LeaseRevoke(P.LeaseRevokeRequest(ID=lease_id), timeout=10).header.revision
        events = []
        while len(events) < 2:
            events += next(watch).events
    finally:
        done.set()
        watch.cancel()
    delete = kv_pb2.Event.DELETE
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in events] == [(delete, b"w/a", rev), (delete, b"w/b", rev)]
