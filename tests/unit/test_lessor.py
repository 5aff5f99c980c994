"""The lessor: grant, revoke, attach/detach through mvcc writes, rebuild from the backend,
minimum TTL, errors, expiry and checkpoints on the primary (a fake clock)."""
from __future__ import annotations

import pytest

from pyetcd import errors
from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2 as P
from pyetcd.server.apply import Applier
from pyetcd.server.lessor import MAX_LEASE_TTL, Lessor, min_lease_ttl
from pyetcd.storage.backend import Backend
from pyetcd.storage.mvcc import KVStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Node:
    """A backend, a store and an applier wired to a lessor as the server wires them."""

    def __init__(self, path: str, clock: Clock, interval: float = 300.0) -> None:
        self.path, self.clock, self.interval = path, clock, interval
        self.index = 0
        self.open()

    def open(self) -> None:
        self.backend = Backend(self.path)
        self.lessor = Lessor(2, self.clock, checkpoint_interval=self.interval)
        self.lessor.use_backend(self.backend)
        self.store = KVStore(self.backend, leases=self.lessor)
        self.applier = Applier(self.store)
        self.lessor.register(self.applier)

    def restart(self) -> None:
        self.backend.close()
        self.open()

    def do(self, **request):
        self.index += 1
        item = raft_internal_pb2.InternalRaftRequest(ID=self.index, **request)
        [(resp, events)] = self.applier.apply_batch([(self.index, 2, item)])
        self.events = events
        if isinstance(resp, errors.EtcdError):
            raise resp
        return resp

    def grant(self, lease_id: int, ttl: int):
        return self.do(lease_grant=P.LeaseGrantRequest(ID=lease_id, TTL=ttl))

    def put(self, key: bytes, lease: int = 0, **kw):
        return self.do(put=P.PutRequest(key=key, value=b"v", lease=lease, **kw))

    def get(self, key: bytes):
        return self.applier.range(P.RangeRequest(key=key)).kvs

    def attached(self) -> dict[int, set[bytes]]:
        return {lease.id: set(lease.keys) for lease in self.lessor.leases.values()}


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def node(tmp_path, clock):
    n = Node(str(tmp_path / "db"), clock)
    yield n
    n.backend.close()


def test_min_ttl_is_one_and_a_half_election_timeouts_rounded_up():
    assert min_lease_ttl(10, 100) == 2  # the default flags: 1.5 s -> 2 s
    assert min_lease_ttl(10, 300) == 5  # 4.5 s -> 5 s
    assert min_lease_ttl(20, 100) == 3


def test_grant_raises_a_short_ttl_to_the_minimum_and_refuses_duplicates_and_huge_ttls(node):
    resp = node.grant(7, 1)
    assert (resp.ID, resp.TTL) == (7, 2)
    assert node.grant(8, 60).TTL == 60
    with pytest.raises(errors.EtcdError) as e:
        node.grant(7, 60)
    assert isinstance(e.value, errors.ErrLeaseExist)
    with pytest.raises(errors.EtcdError) as e:
        node.grant(9, MAX_LEASE_TTL + 1)
    assert isinstance(e.value, errors.ErrLeaseTTLTooLarge)
    assert sorted(node.lessor.leases) == [7, 8]


def test_put_with_an_unknown_lease_fails(node):
    with pytest.raises(errors.EtcdError) as e:
        node.put(b"k", lease=5)
    assert isinstance(e.value, errors.ErrLeaseNotFound)
    with pytest.raises(errors.EtcdError):
        node.do(txn=P.TxnRequest(success=[P.RequestOp(request_put=P.PutRequest(key=b"k", lease=5))]))


def test_puts_attach_move_and_detach_keys_and_deletes_detach_them(node):
    node.grant(1, 60)
    node.grant(2, 60)
    node.put(b"a", lease=1)
    node.put(b"b", lease=1)
    node.put(b"c", lease=2)
    assert node.attached() == {1: {b"a", b"b"}, 2: {b"c"}}
    node.put(b"a", lease=2)  # moved
    node.put(b"b")  # detached
    node.put(b"c", ignore_lease=True)  # kept
    assert node.attached() == {1: set(), 2: {b"a", b"c"}}
    node.do(delete_range=P.DeleteRangeRequest(key=b"a"))
    node.do(txn=P.TxnRequest(success=[P.RequestOp(request_put=P.PutRequest(key=b"d", lease=1))]))
    assert node.attached() == {1: {b"d"}, 2: {b"c"}}
    assert node.lessor.key_lease == {b"d": 1, b"c": 2}


def test_revoke_deletes_every_attached_key_in_one_revision(node):
    node.grant(1, 60)
    for key in (b"z", b"x", b"y"):
        node.put(key, lease=1)
    node.put(b"other")
    rev = node.store.rev
    resp = node.do(lease_revoke=P.LeaseRevokeRequest(ID=1))
    assert resp.header.revision == rev + 1
    assert [(change.deleted, change.key, change.main) for change in node.events] == \
        [(True, b"x", rev + 1), (True, b"y", rev + 1), (True, b"z", rev + 1)]
    assert node.get(b"x") == [] and node.get(b"other") != []
    assert node.lessor.leases == {} and node.lessor.key_lease == {}
    with pytest.raises(errors.EtcdError) as e:
        node.do(lease_revoke=P.LeaseRevokeRequest(ID=1))
    assert isinstance(e.value, errors.ErrLeaseNotFound)


def test_a_restart_rebuilds_leases_attachments_and_checkpoints_from_the_backend(node):
    node.grant(1, 60)
    node.grant(-5 & ((1 << 63) - 1), 30)
    node.grant(3, 90)
    long_key = b"k" * 2000  # longer than LMDB's key limit
    node.put(long_key, lease=1)
    node.put(b"b", lease=3)
    node.put(b"c", lease=3)
    node.put(b"c", lease=1)
    node.do(lease_checkpoint=P.LeaseCheckpointRequest(checkpoints=[P.LeaseCheckpoint(ID=3, remaining_TTL=40)]))
    before = node.attached()
    node.backend.commit()
    node.restart()
    assert node.attached() == before == {1: {long_key, b"c"}, -5 & ((1 << 63) - 1): set(), 3: {b"b"}}
    assert node.lessor.key_lease == {long_key: 1, b"c": 1, b"b": 3}
    assert (node.lessor.leases[3].ttl, node.lessor.leases[3].remaining_ttl) == (90, 40)
    node.do(lease_revoke=P.LeaseRevokeRequest(ID=1))  # the rebuilt attachments are revoked too
    assert node.get(long_key) == [] and node.get(b"c") == []


def test_only_the_primary_expires_leases_and_promotion_counts_from_the_checkpoint(node, clock):
    node.grant(1, 10)
    node.grant(2, 100)
    clock.now += 1000
    assert node.lessor.expired_leases(10) == []  # a follower never expires anything
    node.do(lease_checkpoint=P.LeaseCheckpointRequest(checkpoints=[P.LeaseCheckpoint(ID=2, remaining_TTL=20)]))
    node.lessor.promote(extend=1.0)
    clock.now += 10.5
    assert node.lessor.expired_leases(10) == []
    clock.now += 0.5
    assert node.lessor.expired_leases(10) == [1]
    assert node.lessor.expired_leases(10, skip=[1]) == []
    clock.now += 10
    assert sorted(node.lessor.expired_leases(10)) == [1, 2]  # 20 + 1 s, not 100
    node.lessor.demote()
    assert node.lessor.expired_leases(10) == []


def test_a_lease_granted_on_the_primary_expires_after_its_ttl_and_renew_restarts_it(node, clock):
    node.lessor.promote(extend=1.0)
    node.grant(1, 10)
    lease = node.lessor.leases[1]
    clock.now += 9
    assert node.lessor.renew(lease) == 10
    clock.now += 9.9
    assert not node.lessor.expired(lease)
    assert 0 < node.lessor.remaining(lease) < 0.2
    clock.now += 0.1
    assert node.lessor.expired(lease)


def test_checkpoints_are_due_one_interval_after_a_grant_for_leases_longer_than_the_interval(tmp_path, clock):
    node = Node(str(tmp_path / "db"), clock, interval=5.0)
    try:
        node.lessor.promote(extend=1.0)
        node.grant(1, 60)
        node.grant(2, 4)  # shorter than the interval: never checkpointed
        clock.now += 4.9
        assert node.lessor.checkpoints_due(10) == []
        clock.now += 0.1
        [cp] = node.lessor.checkpoints_due(10)
        assert (cp.ID, cp.remaining_TTL) == (1, 55)
        lease = node.lessor.leases[1]
        assert node.lessor.needs_reset(lease)  # in flight: a renew must reset after it
        node.do(lease_checkpoint=P.LeaseCheckpointRequest(checkpoints=[cp]))
        node.lessor.checkpoint_done([cp])
        assert lease.remaining_ttl == 55 and node.lessor.needs_reset(lease)
        node.do(lease_checkpoint=P.LeaseCheckpointRequest(checkpoints=[P.LeaseCheckpoint(ID=1, remaining_TTL=0)]))
        assert not node.lessor.needs_reset(lease)
        assert node.lessor.checkpoints_due(10) == []
        clock.now += 5
        assert [c.ID for c in node.lessor.checkpoints_due(10)] == [1]  # the next one
    finally:
        node.backend.close()


def test_checkpoints_can_be_turned_off(tmp_path, clock):
    node = Node(str(tmp_path / "db"), clock, interval=1.0)
    node.lessor.checkpoints = False
    try:
        node.lessor.promote(extend=0)
        node.grant(1, 60)
        clock.now += 10
        assert node.lessor.checkpoints_due(10) == []
    finally:
        node.backend.close()


def test_leases_are_listed_soonest_expiry_first(node, clock):
    node.lessor.promote(extend=0)
    node.grant(1, 600)
    node.grant(2, 300)
    node.grant(3, 500)
    assert [lease.id for lease in node.lessor.by_expiry()] == [2, 3, 1]
