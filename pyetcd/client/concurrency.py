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

from typing import Iterator, Optional

from pyetcd.client._common import Bytes, prefix_end, to_bytes
from pyetcd.errors import EtcdError
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.proto.mvccpb import kv_pb2

DEFAULT_SESSION_TTL = 60
ELECTION_NOT_LEADER = "election: not leader"


class Session:
    """A lease with ``ttl`` seconds, renewed in the background until ``close()`` revokes it."""

    def __init__(self, client, ttl: int = DEFAULT_SESSION_TTL, lease_id: int = 0) -> None:
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

    def __exit__(self, *exc) -> None:
        self.close()


def session_key(prefix: bytes, lease_id: int) -> bytes:
    return prefix + b"%x" % lease_id


def claim(client, key: bytes, value: bytes, lease_id: int) -> tuple[int, rpc_pb2.ResponseHeader, Optional[bytes]]:
    """Create ``key`` unless it exists: (its create revision, header, the value it had if it existed)."""
    cmp = rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.CREATE, result=rpc_pb2.Compare.EQUAL, create_revision=0)
    resp = client.txn(compare=[cmp], success=[rpc_pb2.PutRequest(key=key, value=value, lease=lease_id)],
                      failure=[rpc_pb2.RangeRequest(key=key)])
    if resp.succeeded:
        return resp.header.revision, resp.header, None
    kv = resp.responses[0].response_range.kvs[0]
    return kv.create_revision, resp.header, kv.value


def wait_delete(client, key: bytes, revision: int) -> None:
    """Block until ``key`` is deleted at a revision after ``revision``."""
    with client.watch(key, start_revision=revision + 1) as w:
        for resp in w:
            if any(ev.type == kv_pb2.Event.DELETE for ev in resp.events):
                return


def wait_deletes(client, prefix: bytes, max_create_revision: int) -> rpc_pb2.ResponseHeader:
    """Wait until no key under ``prefix`` has a create revision at or below ``max_create_revision``."""
    while True:
        resp = client.get(prefix, prefix_end(prefix), max_create_revision=max_create_revision,
                          sort_order=rpc_pb2.RangeRequest.DESCEND, sort_target=rpc_pb2.RangeRequest.CREATE, limit=1)
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

    def __exit__(self, *exc) -> None:
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
        cmp = rpc_pb2.Compare(key=self.key, target=rpc_pb2.Compare.CREATE, result=rpc_pb2.Compare.EQUAL,
                              create_revision=self.revision)
        resp = self.client.txn(compare=[cmp], success=[
            rpc_pb2.PutRequest(key=self.key, value=to_bytes(value), lease=self.session.lease_id)])
        if not resp.succeeded:
            raise EtcdError(9, ELECTION_NOT_LEADER)

    def resign(self) -> None:
        self.client.delete(self.key)

    def leader(self) -> rpc_pb2.RangeResponse:
        """The leader's key (the lowest create revision under the prefix); no kvs if none leads."""
        return self.client.get(self.prefix, prefix_end(self.prefix), sort_order=rpc_pb2.RangeRequest.ASCEND,
                               sort_target=rpc_pb2.RangeRequest.CREATE, limit=1)

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

    def _first_put(self, end: bytes, revision: int):
        with self.client.watch(self.prefix, end, start_revision=revision + 1) as w:
            for resp in w:
                for ev in resp.events:
                    if ev.type == kv_pb2.Event.PUT:
                        return resp.header, ev.kv
        raise EtcdError(1, "watch ended")

    def _follow(self, kv) -> Iterator[rpc_pb2.RangeResponse]:
        with self.client.watch(kv.key, start_revision=kv.mod_revision + 1) as w:
            for resp in w:
                for ev in resp.events:
                    if ev.type == kv_pb2.Event.DELETE:
                        return
                    yield rpc_pb2.RangeResponse(header=resp.header, kvs=[ev.kv], count=1)
