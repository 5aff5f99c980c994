"""Sessions, locks and elections with the key layout of etcd's Go ``concurrency`` package, so they
exclude each other with Go programs and etcdctl 3.5 on the same names.

    with Session(client, ttl=10) as s:           # a lease kept alive; closing revokes it
        with Lock(s, "jobs"):                    # key "jobs/<lease id hex>", queued by create revision
            ...
        e = Election(s, "leader")
        e.campaign(b"me")                        # blocks until this session leads
        e.leader()                               # RangeResponse with the leader's key and value
        e.resign()

A waiter holds a key under ``NAME/`` and waits for the key with the next-lower create revision
to be deleted; the lowest create revision holds the lock / leads.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Optional

from pyetcd.client._common import Bytes, prefix_end, to_bytes, txn_request
from pyetcd.errors import FAILED_PRECONDITION, EtcdError
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.proto.mvccpb import kv_pb2

if TYPE_CHECKING:
    from pyetcd.client.sync import Client

DEFAULT_SESSION_TTL = 60
ELECTION_NOT_LEADER = "election: not leader"


class Session:
    """A lease with ``ttl`` seconds, renewed in the background until ``close()`` revokes it."""

    def __init__(self, client: Client, ttl: int = DEFAULT_SESSION_TTL, lease_id: int = 0) -> None:
        self.client = client
        self.lease_id = lease_id or client.lease_grant(ttl).ID
        self.keep_alive = client.keep_alive(self.lease_id)

    @property
    def expired(self) -> bool:
        """True once the lease is gone (revoked or expired): locks held through it are lost."""
        return self.keep_alive.expired

    def close(self) -> None:
        self.keep_alive.stop()
        try:
            self.client.lease_revoke(self.lease_id)
        except EtcdError:
            pass  # already gone or unreachable: it expires by itself

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def session_key(prefix: bytes, lease_id: int) -> bytes:
    return prefix + b"%x" % lease_id


def claim_request(key: bytes, value: bytes, lease_id: int) -> rpc_pb2.TxnRequest:
    """Create ``key`` with the session's lease unless it exists (then read it)."""
    cmp = rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.CREATE, result=rpc_pb2.Compare.EQUAL, create_revision=0)
    return txn_request([cmp], [rpc_pb2.PutRequest(key=key, value=value, lease=lease_id)], [rpc_pb2.RangeRequest(key=key)])


def claim_result(resp: rpc_pb2.TxnResponse) -> tuple[int, rpc_pb2.ResponseHeader, Optional[bytes]]:
    """(the key's create revision, header, the value it had if it existed already)."""
    if resp.succeeded:
        return resp.header.revision, resp.header, None
    kv = resp.responses[0].response_range.kvs[0]
    return kv.create_revision, resp.header, kv.value


def claim(client: Client, key: bytes, value: bytes, lease_id: int) -> tuple[int, rpc_pb2.ResponseHeader, Optional[bytes]]:
    return claim_result(client.txn(claim_request(key, value, lease_id)))


def older_waiter_request(prefix: bytes, max_create_revision: int) -> rpc_pb2.RangeRequest:
    """The newest key under ``prefix`` created at or below ``max_create_revision``: the one to wait for."""
    return rpc_pb2.RangeRequest(key=prefix, range_end=prefix_end(prefix), max_create_revision=max_create_revision,
                                sort_order=rpc_pb2.RangeRequest.DESCEND, sort_target=rpc_pb2.RangeRequest.CREATE,
                                limit=1)


def leader_request(prefix: bytes) -> rpc_pb2.RangeRequest:
    """The oldest key under ``prefix``: the lock holder / the leader."""
    return rpc_pb2.RangeRequest(key=prefix, range_end=prefix_end(prefix), sort_order=rpc_pb2.RangeRequest.ASCEND,
                                sort_target=rpc_pb2.RangeRequest.CREATE, limit=1)


def proclaim_request(key: bytes, create_revision: int, value: bytes, lease_id: int) -> rpc_pb2.TxnRequest:
    cmp = rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.CREATE, result=rpc_pb2.Compare.EQUAL,
                          create_revision=create_revision)
    return txn_request([cmp], [rpc_pb2.PutRequest(key=key, value=value, lease=lease_id)])


def not_leader() -> EtcdError:
    return EtcdError(FAILED_PRECONDITION, ELECTION_NOT_LEADER)


def wait_delete(client: Client, key: bytes, revision: int) -> None:
    """Block until ``key`` is deleted at a revision after ``revision``."""
    with client.watch(key, start_revision=revision + 1) as w:
        for resp in w:
            if any(ev.type == kv_pb2.Event.DELETE for ev in resp.events):
                return


def wait_deletes(client: Client, prefix: bytes, max_create_revision: int) -> rpc_pb2.ResponseHeader:
    """Wait until no key under ``prefix`` has a create revision at or below ``max_create_revision``."""
    while True:
        resp = client.range(older_waiter_request(prefix, max_create_revision))
        if not resp.kvs:
            return resp.header
        wait_delete(client, resp.kvs[0].key, resp.header.revision)


class Lock:
    """A mutex on ``name``: ``acquire()`` blocks until held; ``key`` is this holder's key."""

    def __init__(self, session: Session, name: Bytes) -> None:
        self.session, self.client = session, session.client
        self.prefix = to_bytes(name) + b"/"
        self.key = session_key(self.prefix, session.lease_id)
        self.revision = 0  # create revision of our key
        self.header: Optional[rpc_pb2.ResponseHeader] = None  # when the lock was acquired

    def acquire(self) -> None:
        self.revision, self.header, _ = claim(self.client, self.key, b"", self.session.lease_id)
        try:
            self.header = wait_deletes(self.client, self.prefix, self.revision - 1)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        self.client.delete(self.key)

    def __enter__(self) -> "Lock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Election:
    """Leader election on ``name``: ``campaign`` waits to lead, ``observe`` follows the leader."""

    def __init__(self, session: Session, name: Bytes) -> None:
        self.session, self.client = session, session.client
        self.prefix = to_bytes(name) + b"/"
        self.key = session_key(self.prefix, session.lease_id)
        self.revision = 0

    def campaign(self, value: Bytes) -> rpc_pb2.ResponseHeader:
        value = to_bytes(value)
        self.revision, header, had = claim(self.client, self.key, value, self.session.lease_id)
        if had is not None and had != value:
            self.proclaim(value)
        try:
            return wait_deletes(self.client, self.prefix, self.revision - 1)
        except BaseException:
            self.resign()
            raise

    def proclaim(self, value: Bytes) -> None:
        """Change the leader's value without a new election (only while this session campaigns)."""
        resp = self.client.txn(proclaim_request(self.key, self.revision, to_bytes(value), self.session.lease_id))
        if not resp.succeeded:
            raise not_leader()

    def resign(self) -> None:
        self.client.delete(self.key)

    def leader(self) -> rpc_pb2.RangeResponse:
        """The leader's key (the lowest create revision under the prefix); no kvs if none leads."""
        return self.client.range(leader_request(self.prefix))

    def observe(self) -> Iterator[rpc_pb2.RangeResponse]:
        """Yield a RangeResponse with the leader's key-value whenever the leader or its value changes."""
        end = prefix_end(self.prefix)
        while True:
            resp = self.leader()
            if resp.kvs:
                header, kv = resp.header, resp.kvs[0]
            else:
                header, kv = self._first_put(end, resp.header.revision)
            yield rpc_pb2.RangeResponse(header=header, kvs=[kv], count=1)
            yield from self._follow(kv)

    def _first_put(self, end: bytes, revision: int) -> tuple[rpc_pb2.ResponseHeader, kv_pb2.KeyValue]:
        with self.client.watch(self.prefix, end, start_revision=revision + 1) as w:
            for resp in w:
                for ev in resp.events:
                    if ev.type == kv_pb2.Event.PUT:
                        return resp.header, ev.kv
        raise EtcdError(1, "watch ended")

    def _follow(self, kv: kv_pb2.KeyValue) -> Iterator[rpc_pb2.RangeResponse]:
        with self.client.watch(kv.key, start_revision=kv.mod_revision + 1) as w:
            for resp in w:
                for ev in resp.events:
                    if ev.type == kv_pb2.Event.DELETE:
                        return
                    yield rpc_pb2.RangeResponse(header=resp.header, kvs=[ev.kv], count=1)
