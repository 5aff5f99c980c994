"""Members joining and leaving a running pyetcd cluster, driven by real etcdctl 3.5.1.

A member added with `member add` starts with --initial-cluster-state existing, learns the
cluster from its peers, catches up as a learner, is promoted; a removed member shuts itself
down; a member of another cluster (another --initial-cluster-token) is refused by the peers.
"""
from __future__ import annotations

import re
import subprocess
import time
import urllib.request

import grpc
import pytest

from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from servers import wait_for, PYETCD, Server, cluster, etcdctl, have_ref, ref_bin, start_all

pytestmark = pytest.mark.skipif(not have_ref(), reason="needs real etcdctl 3.5.1")
CTL = [ref_bin("etcdctl")]


def serializable_get(member: Server, key: bytes) -> bytes | None:
    with grpc.insecure_channel(member.endpoint) as ch:
        resp = rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=key, serializable=True), timeout=2)
    return resp.kvs[0].value if resp.kvs else None


def status(member: Server) -> rpc_pb2.StatusResponse:
    with grpc.insecure_channel(member.endpoint) as ch:
        return rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=2)


def ctl_ok(endpoints: str, *args: str) -> str:
    out = etcdctl(CTL, endpoints, *args)
    assert out.returncode == 0, f"etcdctl {' '.join(args)}: {out.stderr}"
    return out.stdout


def member_list(endpoints: str) -> list[list[str]]:
    """`member list` rows: ID, status, name, peer URLs, client URLs, is learner."""
    return [line.split(", ") for line in ctl_ok(endpoints, "member", "list").splitlines()]


LEARNER_REFUSAL = "etcdserver: rpc not supported for learner"


def assert_learner_refuses(learner: Server) -> None:
    """etcd 3.5's learner serves serializable Range, Status and Snapshot; every other RPC and
    stream is refused with UNAVAILABLE, so clients move on to a voter."""
    with grpc.insecure_channel(learner.endpoint) as ch:
        kv, cluster_stub = rpc_pb2_grpc.KVStub(ch), rpc_pb2_grpc.ClusterStub(ch)
        watch, lease = rpc_pb2_grpc.WatchStub(ch), rpc_pb2_grpc.LeaseStub(ch)
        calls = [lambda: kv.Range(rpc_pb2.RangeRequest(key=b"k0"), timeout=5),
                 lambda: kv.Put(rpc_pb2.PutRequest(key=b"k0", value=b"x"), timeout=5),
                 lambda: cluster_stub.MemberList(rpc_pb2.MemberListRequest(), timeout=5),
                 lambda: lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=10), timeout=5),
                 lambda: next(watch.Watch(iter([rpc_pb2.WatchRequest(
                     create_request=rpc_pb2.WatchCreateRequest(key=b"k0"))]), timeout=5))]
        for call in calls:
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert (refused.value.code(), refused.value.details()) == (grpc.StatusCode.UNAVAILABLE, LEARNER_REFUSAL)
    out = etcdctl(CTL, learner.endpoint, "put", "k0", "x")
    assert out.returncode != 0 and LEARNER_REFUSAL in out.stderr, out.stderr


def log_text(member: Server) -> str:
    with open(member.log_path, errors="replace") as f:
        return f.read()


@pytest.fixture
def three(tmp_path):
    members = cluster(PYETCD, str(tmp_path), 3)
    try:
        start_all(members)
        yield members
    finally:
        for m in members:
            m.stop()


@pytest.fixture
def stranger(tmp_path):
    """One more pyetcd member (not started); stopped by PID at the end."""
    server = Server(PYETCD, str(tmp_path / "stranger.etcd"), name="infra3")
    try:
        yield server
    finally:
        server.stop()


def test_learner_joins_is_promoted_and_a_removed_member_exits(three, stranger):
    endpoints = ",".join(m.endpoint for m in three)
    for i in range(20):
        ctl_ok(three[i % 3].endpoint, "put", f"k{i}", f"v{i}")

    added = ctl_ok(endpoints, "member", "add", "infra3", "--learner", f"--peer-urls={stranger.peer_url}")
    new_id = re.search(r"Member +([0-9a-f]+) added to cluster", added).group(1)
    # etcdctl prints the flags the new member needs, as for real etcd
    initial_cluster = re.search(r'ETCD_INITIAL_CLUSTER="([^"]*)"', added).group(1)
    assert sorted(initial_cluster.split(",")) == sorted([f"{m.name}={m.peer_url}" for m in three]
                                                        + [f"infra3={stranger.peer_url}"])
    assert 'ETCD_INITIAL_CLUSTER_STATE="existing"' in added
    stranger.initial_cluster = initial_cluster
    stranger.extra = ["--initial-cluster-state", "existing"]
    stranger.start(wait=False)
    wait_for(lambda: serializable_get(stranger, b"k19") == b"v19", 30, "the learner to serve the keys")
    assert serializable_get(stranger, b"k0") == b"v0"
    assert status(stranger).isLearner
    assert_learner_refuses(stranger)

    def promote() -> bool:
        out = etcdctl(CTL, endpoints, "member", "promote", new_id)
        if out.returncode == 0:
            return True
        assert "can only promote a learner member which is in sync with leader" in out.stderr, out.stderr
        return False

    wait_for(promote, 20, "the learner to be promoted")
    rows = member_list(endpoints)
    assert len(rows) == 4 and all(row[1] == "started" and row[5] == "false" for row in rows), rows
    assert {row[2] for row in rows} == {"infra0", "infra1", "infra2", "infra3"}

    # a removed follower learns of its removal from the peers refusing it, a removed leader by
    # applying it: either shuts itself down, and the others keep taking writes
    everyone = [*three, stranger]
    leader_id = status(three[0]).leader
    follower = next(m for m in three if status(m).header.member_id != leader_id)
    remove_and_wait_exit(everyone, follower)
    leader = next(m for m in everyone if m.proc.poll() is None and status(m).header.member_id == leader_id)
    remove_and_wait_exit(everyone, leader)
    rest = [m for m in everyone if m.proc.poll() is None]
    assert len(rest) == 2
    endpoints = ",".join(m.endpoint for m in rest)
    wait_for(lambda: etcdctl(CTL, endpoints, "--command-timeout=3s", "put", "after", "remove").returncode == 0,
             20, "a write after the leader's removal")
    for m in rest:
        wait_for(lambda: serializable_get(m, b"after") == b"remove", 10, f"the write on {m.name}")
    assert {row[2] for row in member_list(endpoints)} == {m.name for m in rest}


def remove_and_wait_exit(everyone: list[Server], gone: Server) -> None:
    gone_id = f"{status(gone).header.member_id:x}"
    others = ",".join(m.endpoint for m in everyone if m is not gone and m.proc.poll() is None)
    ctl_ok(others, "member", "remove", gone_id)
    try:
        gone.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the removed member {gone.name} did not exit:\n{gone.log_tail()}") from None
    assert gone.proc.returncode == 0 and "permanently removed from the cluster" in log_text(gone)


def test_member_of_another_cluster_is_refused(three, stranger):
    endpoints = ",".join(m.endpoint for m in three)
    before = member_list(endpoints)
    # same peers, other token: other member and cluster IDs, so every handshake is refused
    stranger.initial_cluster = three[0].initial_cluster + f",infra3={stranger.peer_url}"
    stranger.extra = ["--initial-cluster-token", "another-cluster"]
    stranger.start(wait=False)
    wait_for(lambda: any("cluster ID mismatch" in log_text(m) for m in three), 15,
             "the members to refuse the stranger's connections")
    assert stranger.proc.poll() is None, stranger.log_tail()
    # its peer transport talks before its client port serves: wait for the latter
    wait_for(lambda: status(stranger) is not None, 15, "the stranger's client port")
    # no split cluster: the stranger never has a leader, the cluster never lists it
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert status(stranger).leader == 0
        time.sleep(0.2)
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(stranger.url + "/health", timeout=2)
    assert member_list(endpoints) == before
    ctl_ok(endpoints, "put", "still", "ours")
