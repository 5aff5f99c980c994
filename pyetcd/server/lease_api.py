"""The member's Lease API and the leader's lease work (etcd's lease methods of EtcdServer).

Grant and revoke are proposed like any write. Renew (keep-alive) and time-to-live are answered
by the leader only, the one member that knows when leases expire: a follower forwards them to
the leader's client port, one request per call, and answers with its own header. The leader
checks every LEASE_CHECK_INTERVAL for expired leases (proposing their revokes, at most
REVOKES_PER_SECOND) and for remaining TTLs due to be checkpointed.

Checkpoints are on by default (beyond etcd, where --experimental-enable-lease-checkpoint is
off): a lease keeps its remaining TTL across leader changes and restarts. A renew of a lease
with a checkpointed remaining TTL (or with a checkpoint in flight) commits a reset first and
answers after it, so a checkpoint logged before the renew can never shorten what the renew
granted.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from pyetcd import errors
from pyetcd.logutil import log
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.server.config import parse_duration
from pyetcd.server.lessor import MAX_LEASE_TTL, Lessor, min_lease_ttl
from pyetcd.server.quota import LEASE_OVERHEAD

if TYPE_CHECKING:
    from pyetcd.server.etcdserver import EtcdServer

logger = logging.getLogger("pyetcd.server")
T = TypeVar("T")

LEASE_CHECK_INTERVAL = 0.5  # etcd's revokeExpiredLeases period
REVOKES_PER_SECOND = 1000  # etcd's leaseRevokeRate
CHECKPOINTS_PER_SECOND = 1000  # etcd's leaseCheckpointRate (and at most this many per proposal)
_ID_MASK = (1 << 63) - 1


def new_lessor(server: EtcdServer) -> Lessor:
    cfg = server.cfg
    loop_time = lambda: asyncio.get_running_loop().time()  # noqa: E731 - the member's clock
    return Lessor(min_lease_ttl(server.election_ticks, cfg["heartbeat-interval"]), loop_time,
                  checkpoint_interval=parse_duration(cfg["experimental-lease-checkpoint-interval"]),
                  checkpoints=cfg["experimental-enable-lease-checkpoint"],
                  persist_checkpoints=cfg["experimental-enable-lease-checkpoint-persist"])


class LeaseMethods:
    """Mixed into EtcdServer: its lease methods and the leader's lease loop."""

    lessor: Lessor

    def _leadership_changed(self: EtcdServer, lead: int) -> None:
        if lead == self.member_id and not self.lessor.primary:
            self.lessor.promote(self.election_ticks * self.tick_seconds)
        elif lead != self.member_id and self.lessor.primary:
            self.lessor.demote()

    async def _run_leases(self: EtcdServer) -> None:
        """The leader's loop: revoke expired leases, checkpoint remaining TTLs."""
        in_flight: dict[int, asyncio.Task] = {}  # lease ID -> its revoke
        checkpoints: set[asyncio.Task] = set()
        loop = asyncio.get_running_loop()
        per_check = int(REVOKES_PER_SECOND * LEASE_CHECK_INTERVAL)
        try:
            while True:
                await self.lessor.wait_for_work()
                await asyncio.sleep(LEASE_CHECK_INTERVAL)
                for lease_id in self.lessor.expired_leases(per_check, skip=in_flight):
                    task = loop.create_task(self._revoke_expired(lease_id), name="lease-revoke")
                    in_flight[lease_id] = task
                    task.add_done_callback(lambda _t, i=lease_id: in_flight.pop(i, None))
                due = self.lessor.checkpoints_due(int(CHECKPOINTS_PER_SECOND * LEASE_CHECK_INTERVAL))
                if due:
                    task = loop.create_task(self._checkpoint_leases(due), name="lease-checkpoint")
                    checkpoints.add(task)
                    task.add_done_callback(checkpoints.discard)
        finally:
            for task in [*in_flight.values(), *checkpoints]:
                task.cancel()

    async def _revoke_expired(self: EtcdServer, lease_id: int) -> None:
        try:
            await self._propose(lease_revoke=rpc_pb2.LeaseRevokeRequest(ID=lease_id))
        except errors.EtcdError as e:  # (still expired: the next check tries again)
            log(logger, logging.WARNING, "failed to revoke lease", **{"lease-id": f"{lease_id:016x}",
                                                                     "error": e.message})

    async def _checkpoint_leases(self: EtcdServer, due: list[rpc_pb2.LeaseCheckpoint]) -> None:
        try:
            await self._propose(lease_checkpoint=rpc_pb2.LeaseCheckpointRequest(checkpoints=due))
        except errors.EtcdError:
            pass  # (the next checkpoint, or the next leader's, records it)
        finally:
            self.lessor.checkpoint_done(due)

    # ---- the Lease service ---------------------------------------------------------------

    async def lease_grant(self: EtcdServer, req: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        if req.TTL > MAX_LEASE_TTL:
            raise errors.ErrLeaseTTLTooLarge
        if not req.ID:
            req = rpc_pb2.LeaseGrantRequest(TTL=req.TTL, ID=self._ids.next() & _ID_MASK)
        await self.check_quota(LEASE_OVERHEAD)
        return await self._propose(lease_grant=req)

    async def lease_revoke(self: EtcdServer, req: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        return await self._propose(lease_revoke=req)

    async def lease_leases(self: EtcdServer, req: rpc_pb2.LeaseLeasesRequest) -> rpc_pb2.LeaseLeasesResponse:
        listed = [rpc_pb2.LeaseStatus(ID=lease.id) for lease in self.lessor.by_expiry()]
        return rpc_pb2.LeaseLeasesResponse(header=self.header(), leases=listed)

    async def lease_keep_alive(self: EtcdServer, req: rpc_pb2.LeaseKeepAliveRequest
                               ) -> rpc_pb2.LeaseKeepAliveResponse:
        """One renew (an unknown lease: TTL 0, as etcd's v3rpc answers)."""
        async def renew() -> rpc_pb2.LeaseKeepAliveResponse | None:
            ttl = await self._renew(req.ID)
            return None if ttl is None else rpc_pb2.LeaseKeepAliveResponse(ID=req.ID, TTL=ttl)
        resp = await self._at_leader(renew, "LeaseKeepAlive", req, rpc_pb2.LeaseKeepAliveResponse)
        resp.header.CopyFrom(self.header())
        return resp

    async def lease_time_to_live(self: EtcdServer, req: rpc_pb2.LeaseTimeToLiveRequest
                                 ) -> rpc_pb2.LeaseTimeToLiveResponse:
        """The remaining TTL, as the leader knows it (an unknown lease: TTL -1)."""
        async def look_up() -> rpc_pb2.LeaseTimeToLiveResponse | None:
            await self._wait_applied(self.raft.commit_index)
            lease = self.lessor.leases.get(req.ID)
            if lease is None:
                return rpc_pb2.LeaseTimeToLiveResponse(ID=req.ID, TTL=-1)
            if not self.lessor.primary:
                return None
            return rpc_pb2.LeaseTimeToLiveResponse(ID=req.ID, TTL=int(self.lessor.remaining(lease)),
                                                   grantedTTL=lease.ttl, keys=list(lease.keys) if req.keys else [])
        resp = await self._at_leader(look_up, "LeaseTimeToLive", req, rpc_pb2.LeaseTimeToLiveResponse)
        resp.header.CopyFrom(self.header())
        return resp

    async def _renew(self: EtcdServer, lease_id: int) -> int | None:
        """Renew on the leader once it has applied its commit index. Returns the TTL (0: no such
        lease), None if this member stopped being primary meanwhile."""
        await self._wait_applied(self.raft.commit_index)
        lease = self.lessor.leases.get(lease_id)
        if lease is None:
            return 0
        if not self.lessor.primary:
            return None
        if self.lessor.expired(lease):  # its revoke is on the way: answer once it is done
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.request_timeout):
                    await self.lessor.wait_gone(lease_id)
            return 0 if self.lessor.primary else None
        self.lessor.renew(lease)  # (first, so a checkpoint proposed meanwhile counts from the renew)
        if self.lessor.needs_reset(lease):
            reset = rpc_pb2.LeaseCheckpoint(ID=lease_id, remaining_TTL=0)
            await self._propose(lease_checkpoint=rpc_pb2.LeaseCheckpointRequest(checkpoints=[reset]))
            lease = self.lessor.leases.get(lease_id)
            if lease is None:
                return 0
            if not self.lessor.primary:
                return None
        return self.lessor.renew(lease)

    async def _at_leader(self: EtcdServer, local: Callable[[], Awaitable[T | None]], method: str, req,
                         response_type: type[T]) -> T:
        """``local()`` on the leader (None: it stopped leading, ask again), else the leader's
        answer to ``method``; waits for a leader up to the request timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        while True:
            if self.is_leader:
                result = await local()
                if result is not None:
                    return result
                await asyncio.sleep(self.tick_seconds)  # (until the new leader is known)
            elif self.raft.lead:
                return await self._forward_to_leader(method, req, response_type, service="Lease")
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, deadline - loop.time())):
                        await self._leader_changed.wait()
            if loop.time() >= deadline:
                raise errors.ErrNoLeader
