"""The lessor: leases, the keys attached to them, and when they expire (etcd's lessor).

What is replicated lives in bucket ``lease`` of the backend and changes only at apply, in the
apply batch's transaction:

- 8-byte big-endian lease ID -> LeaseRecord (ID, TTL, RemainingTTL: the remaining TTL last
  checkpointed, 0 for none);
- the same 8 bytes + blake2b-16 of a user key -> the user key: an attachment (user keys can be
  longer than LMDB's 511-byte key limit, so the key itself is the value).

One scan of the bucket rebuilds the in-memory maps (lease -> keys, key -> lease) at start and
after a snapshot install, without reading the keyspace.

What is not replicated is time: only the *primary* (the leader) gives leases an expiry, in its
loop's time. Promotion sets every expiry to now + the remaining TTL (checkpointed, else the full
TTL) + an extension (the election timeout, so that leases do not expire while clients find the
new leader); followers and a demoted leader never expire anything. The server polls ``expired``
and ``checkpoints_due`` on the leader and proposes revokes and checkpoints through Raft.
"""
from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import lmdb

from pyetcd import errors
from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd.storage.backend import Backend
from pyetcd.storage.gosort import go_sort

MAX_LEASE_TTL = 9_000_000_000  # seconds (etcd's MaxLeaseTTL)
_ID_BYTES = 8
_KEY_HASH_BYTES = 16

LeaseRecord = raft_internal_pb2.LeaseRecord


def min_lease_ttl(election_ticks: int, heartbeat_ms: int) -> int:
    """etcd's minimum TTL: 1.5 election timeouts, rounded up to whole seconds (2 s with the
    default flags), so a lease outlives a leader election."""
    return -(-((3 * election_ticks) // 2) * heartbeat_ms // 1000)


def _lease_key(lease_id: int) -> bytes:
    return lease_id.to_bytes(_ID_BYTES, "big", signed=True)


def _attachment_key(lease_id: int, key: bytes) -> bytes:
    return _lease_key(lease_id) + hashlib.blake2b(key, digest_size=_KEY_HASH_BYTES).digest()


@dataclass(eq=False)
class Lease:
    id: int
    ttl: int
    remaining_ttl: int = 0  # checkpointed (0: none)
    keys: set[bytes] = field(default_factory=set)
    expiry: float | None = None  # loop time, on the primary only; None: never
    next_checkpoint: float | None = None  # loop time of the next scheduled checkpoint, if any
    checkpoints_in_flight: int = 0

    @property
    def effective_ttl(self) -> int:
        """What a promotion counts from: the checkpointed remaining TTL, else the full TTL."""
        return self.remaining_ttl if self.remaining_ttl > 0 else self.ttl

    def record(self) -> bytes:
        return LeaseRecord(ID=self.id, TTL=self.ttl, RemainingTTL=self.remaining_ttl).SerializeToString()


class Lessor:
    """Leases of one member. ``key_leased`` is the hook mvcc's WriteTxn calls (storage.mvcc
    LeaseAttachments), so puts, deletes, txns and revokes attach and detach keys alike."""

    def __init__(self, min_ttl: int, clock: Callable[[], float], *, checkpoint_interval: float,
                 checkpoints: bool = True, persist_checkpoints: bool = True) -> None:
        self.min_ttl = min_ttl
        self._clock = clock
        self.checkpoint_interval = checkpoint_interval
        self.checkpoints = checkpoints
        self.persist_checkpoints = persist_checkpoints
        self.leases: dict[int, Lease] = {}
        self.key_lease: dict[bytes, int] = {}
        self.primary = False
        self._extend = 0.0
        self._gone: dict[int, asyncio.Event] = {}  # lease ID -> set once it is revoked (or demoted)
        self._has_work = asyncio.Event()  # set while primary with leases (see wait_for_work)
        self._db: lmdb._Database | None = None

    # ---- the backend ---------------------------------------------------------------------

    def use_backend(self, backend: Backend, *, same_contents: bool = False) -> None:
        """Rebuild every map from the backend (at start, after a snapshot install); a backend
        that holds what the last one held (a defragmented copy) keeps the maps and expiries."""
        self._db = backend.db("lease")
        if same_contents:
            return
        self.leases, self.key_lease = {}, {}
        with backend.begin_read() as txn:
            # (a lease's record sorts before its attachments: its key is their prefix)
            for key, value in txn.cursor(db=self._db):
                lease_id = int.from_bytes(key[:_ID_BYTES], "big", signed=True)
                if len(key) == _ID_BYTES:
                    rec = LeaseRecord.FromString(value)
                    self.leases[lease_id] = Lease(lease_id, rec.TTL, rec.RemainingTTL)
                else:
                    self.leases[lease_id].keys.add(value)
                    self.key_lease[value] = lease_id
        if self.primary:
            self.promote(self._extend)

    def register(self, applier) -> None:
        """Apply lease requests (InternalRaftRequest fields) through ``applier``."""
        applier.lease_exists = self.exists
        applier.register("lease_grant", self._apply_grant)
        applier.register("lease_revoke", self._apply_revoke)
        applier.register("lease_checkpoint", self._apply_checkpoint)

    def exists(self, lease_id: int) -> bool:
        return lease_id in self.leases

    # ---- apply -----------------------------------------------------------------------------

    def _apply_grant(self, w, req: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        if req.TTL > MAX_LEASE_TTL:
            raise errors.ErrLeaseTTLTooLarge
        if req.ID in self.leases:
            raise errors.ErrLeaseExist
        lease = Lease(req.ID, max(req.TTL, self.min_ttl))
        w.txn.put(_lease_key(lease.id), lease.record(), db=self._db)
        self.leases[lease.id] = lease
        if self.primary:
            self._refresh(lease, lease.ttl)
            self._has_work.set()
        resp = rpc_pb2.LeaseGrantResponse(ID=lease.id, TTL=lease.ttl)
        resp.header.revision = w.visible_rev()
        return resp

    def _apply_revoke(self, w, req: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        lease = self.leases.get(req.ID)
        if lease is None:
            raise errors.ErrLeaseNotFound
        # every key in one revision, in key order (the same on every member)
        for key in sorted(lease.keys):
            w.delete_range(key, None)  # detaches it through key_leased
        w.txn.delete(_lease_key(lease.id), db=self._db)
        del self.leases[lease.id]
        gone = self._gone.pop(lease.id, None)
        if gone is not None:
            gone.set()
        resp = rpc_pb2.LeaseRevokeResponse()
        resp.header.revision = w.visible_rev()
        return resp

    def _apply_checkpoint(self, w, req: rpc_pb2.LeaseCheckpointRequest) -> rpc_pb2.LeaseCheckpointResponse:
        for cp in req.checkpoints:
            lease = self.leases.get(cp.ID)
            if lease is None:
                continue
            lease.remaining_ttl = cp.remaining_TTL
            if self.persist_checkpoints:
                w.txn.put(_lease_key(lease.id), lease.record(), db=self._db)
            if self.primary:
                self._schedule_checkpoint(lease)
        resp = rpc_pb2.LeaseCheckpointResponse()
        resp.header.revision = w.visible_rev()
        return resp

    def key_leased(self, txn: lmdb.Transaction, key: bytes, lease_id: int) -> None:
        """mvcc's hook: ``key`` is now attached to ``lease_id`` (0: to none, or deleted)."""
        old = self.key_lease.get(key, 0)
        if old == lease_id:
            return
        if old:
            self.leases[old].keys.discard(key)
            txn.delete(_attachment_key(old, key), db=self._db)
            del self.key_lease[key]
        if lease_id:
            self.leases[lease_id].keys.add(key)
            txn.put(_attachment_key(lease_id, key), key, db=self._db)
            self.key_lease[key] = lease_id

    # ---- the primary -------------------------------------------------------------------------

    def promote(self, extend: float) -> None:
        """This member leads: every lease expires ``extend`` seconds after its remaining TTL."""
        self.primary, self._extend = True, extend
        for lease in self.leases.values():
            self._refresh(lease, lease.effective_ttl + extend)
        if self.leases:
            self._has_work.set()

    def demote(self) -> None:
        self.primary = False
        for lease in self.leases.values():
            lease.expiry = lease.next_checkpoint = None
        for gone in self._gone.values():
            gone.set()  # (a renew waiting for an expired lease's revoke gives up: no longer primary)
        self._gone.clear()

    async def wait_for_work(self) -> None:
        """Until this member is primary and has leases (the leader's loop sleeps meanwhile)."""
        while not (self.primary and self.leases):
            self._has_work.clear()
            await self._has_work.wait()

    def renew(self, lease: Lease) -> int:
        """The primary renews ``lease`` (its checkpointed remaining TTL, if any, is reset by a
        committed checkpoint first: see needs_reset). Returns the TTL."""
        self._refresh(lease, lease.ttl)
        return lease.ttl

    @staticmethod
    def needs_reset(lease: Lease) -> bool:
        """Whether a renew must first commit a checkpoint resetting the remaining TTL: one is
        recorded, or a checkpoint proposed earlier could still record one after the renew."""
        return lease.remaining_ttl > 0 or lease.checkpoints_in_flight > 0

    def expired(self, lease: Lease) -> bool:
        return lease.expiry is not None and lease.expiry <= self._clock()

    def remaining(self, lease: Lease) -> float:
        """Seconds until ``lease`` expires (infinite off the primary)."""
        return math.inf if lease.expiry is None else lease.expiry - self._clock()

    async def wait_gone(self, lease_id: int) -> None:
        """Until the lease is revoked, or this member is no longer primary."""
        if lease_id in self.leases and self.primary:
            await self._gone.setdefault(lease_id, asyncio.Event()).wait()

    def expired_leases(self, limit: int, skip: Iterable[int] = ()) -> list[int]:
        """IDs of at most ``limit`` expired leases not in ``skip`` (their revokes in flight)."""
        if not self.primary:
            return []
        now, skip = self._clock(), set(skip)
        out = []
        for lease in self.leases.values():
            if lease.expiry is not None and lease.expiry <= now and lease.id not in skip:
                out.append(lease.id)
                if len(out) == limit:
                    break
        return out

    def checkpoints_due(self, limit: int) -> list[rpc_pb2.LeaseCheckpoint]:
        """Remaining TTLs to checkpoint now (at most ``limit``); each is counted in flight
        until ``checkpoint_done``."""
        if not self.primary or not self.checkpoints:
            return []
        now = self._clock()
        out = []
        for lease in self.leases.values():
            if lease.next_checkpoint is None or lease.next_checkpoint > now or lease.expiry is None:
                continue
            lease.next_checkpoint = None
            remaining = math.ceil(lease.expiry - now)
            if 0 < remaining < lease.ttl:
                lease.checkpoints_in_flight += 1
                out.append(rpc_pb2.LeaseCheckpoint(ID=lease.id, remaining_TTL=remaining))
                if len(out) == limit:
                    break
        return out

    def checkpoint_done(self, checkpoints: Iterable[rpc_pb2.LeaseCheckpoint]) -> None:
        for cp in checkpoints:
            lease = self.leases.get(cp.ID)
            if lease is not None and lease.checkpoints_in_flight:
                lease.checkpoints_in_flight -= 1

    def by_expiry(self) -> list[Lease]:
        """Every lease, soonest expiry first (etcd's Leases order)."""
        leases = list(self.leases.values())
        go_sort(leases, lambda a, b: self.remaining(a) < self.remaining(b))
        return leases

    def _refresh(self, lease: Lease, seconds: float) -> None:
        lease.expiry = self._clock() + seconds
        self._schedule_checkpoint(lease)

    def _schedule_checkpoint(self, lease: Lease) -> None:
        """As etcd: only a lease with more than one interval to go gets a checkpoint, one
        interval from now."""
        if self.checkpoints and lease.effective_ttl > self.checkpoint_interval:
            lease.next_checkpoint = self._clock() + self.checkpoint_interval
        else:
            lease.next_checkpoint = None
