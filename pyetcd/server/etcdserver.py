"""The member: bootstrap from the data dir, propose writes, apply committed entries, serve reads.

Data flows one way (DESIGN §2): a write request is checked, proposed to Raft, made durable in
the WAL, committed by a quorum, applied to MVCC in a batch, and its result resolves the caller's
future (on whichever member the client asked: followers forward proposals to the leader and
apply the same entries). Linearizable reads wait for one ReadIndex round — shared by every read
that arrived before it started — and for the local apply to reach its index; serializable reads
are served locally at once.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import shutil
import tempfile
import time
from typing import Any

from pyetcd import ETCD_VERSION, errors
from pyetcd.logutil import log
from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd.proto.raftpb import raft_pb2
from pyetcd.raft import Config, ProposalDropped, RawNode, ReadState, SoftState
from pyetcd.server import bootstrap, checks
from pyetcd.server.apply import Applier
from pyetcd.server.config import ServerConfig
from pyetcd.server.membership import MemberChange, Membership, added_member_id
from pyetcd.server.platform import Platform
from pyetcd.server.raft_node import RaftNode
from pyetcd.storage.backend import Backend
from pyetcd.storage.mvcc import KVStore
from pyetcd.transport import Rejection, Status

logger = logging.getLogger("pyetcd.server")

InternalRequest = raft_internal_pb2.InternalRaftRequest
M = raft_pb2
# A learner may be promoted once its log is this close to the leader's (etcd: 90%).
LEARNER_READY_PERCENT = 0.9

_FENCE_PREFIX = b"fence/"


class _Expired:
    """What a proposer's future holds when the request timeout passed first."""

    __slots__ = ("late",)

    def __init__(self, late: asyncio.Future) -> None:
        self.late = late  # resolved if the request applies after all

_CONF_CHANGE_TYPE = {
    MemberChange.ADD: M.ConfChangeAddNode, MemberChange.ADD_LEARNER: M.ConfChangeAddLearnerNode,
    MemberChange.PROMOTE: M.ConfChangeAddNode, MemberChange.REMOVE: M.ConfChangeRemoveNode,
}


class EtcdServer:
    """One etcd member. Create, ``await start()``, serve, ``await stop()``."""

    def __init__(self, cfg: ServerConfig, platform: Platform | None = None) -> None:
        self.cfg = cfg
        self.platform = platform or Platform()
        self.max_request_bytes: int = cfg["max-request-bytes"]
        self.max_txn_ops: int = cfg["max-txn-ops"]
        tick_ms = cfg["heartbeat-interval"]
        self.election_ticks = max(2, cfg["election-timeout"] // tick_ms)
        self.tick_seconds = tick_ms / 1000
        # etcd's request timeout: 5 s plus two election timeouts
        self.request_timeout = 5 + 2 * cfg["election-timeout"] / 1000
        self.member_id = 0
        self.cluster_id = 0
        self.applied_index = 0
        self._ids = itertools.count(1)  # replaced by a cluster-unique sequence at start
        self._waiting: dict[int, tuple[asyncio.Future, InternalRequest]] = {}
        self._fenced: set[int] = set()  # requests that must never apply (see Fence)
        self._reads_next: list[asyncio.Future] = []
        self._read_states: dict[bytes, asyncio.Future] = {}
        self._applied_waiters: list[tuple[int, asyncio.Future]] = []
        self._leader_changed = asyncio.Event()
        self._read_wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._stopped = asyncio.Event()
        self.backend: Backend | None = None
        self.store: KVStore | None = None
        self.applier: Applier | None = None
        self.membership: Membership | None = None
        self.raft: RaftNode | None = None
        self.transport: PeerTransport | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.cfg
        os.makedirs(cfg.backend_path, exist_ok=True)
        self._open_backend()
        boot = await bootstrap.bootstrap(cfg, self.backend, self.membership, self.platform)
        self.member_id, self.cluster_id = boot.member_id, boot.cluster_id
        # Request IDs are unique across the cluster and across restarts (like etcd's idutil): the
        # member's low 16 bits, then milliseconds, then a counter. Every member sees every ID.
        millis = int(time.time() * 1000) & 0xFFFFFFFF
        self._ids = itertools.count(((self.member_id & 0xFFFF) << 48) | (millis << 16))
        self.applied_index = self.store.consistent_index
        log(logger, logging.INFO, "starting local member",
            **{"local-member-id": f"{self.member_id:x}", "cluster-id": f"{self.cluster_id:x}"})
        node = RawNode(Config(id=self.member_id, storage=boot.storage,
                              rng=random.Random(self.platform.rng.getrandbits(64)),
                              election_tick=self.election_ticks, heartbeat_tick=1, applied=boot.applied,
                              pre_vote=cfg["pre-vote"], check_quorum=True))
        self.transport = self.platform.transport(
            self.member_id, self.cluster_id, on_message=self._on_peer_message, on_snapshot=self._on_snapshot,
            on_unreachable=self._on_unreachable, on_rejected=self._on_rejected, cluster_info=self._cluster_info,
            rng=random.Random(self.platform.rng.getrandbits(64)), logger=logging.getLogger("pyetcd.transport"))
        await self.transport.start(cfg["listen-peer-urls"])
        self._sync_peers(boot.peers)
        self.raft = RaftNode(node, boot.storage, boot.wal, self.transport, self, tick_seconds=self.tick_seconds,
                             fatal=self.platform.fatal, fsync=not cfg["unsafe-no-fsync"])
        self.raft.start()
        if self.membership.voters() == [self.member_id]:
            node.campaign()  # alone: no one to wait for
        elif cfg["initial-election-tick-advance"]:
            for _ in range(self.election_ticks - 1):
                node.tick()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_loop(), name="linearizable-reads"),
                       loop.create_task(self._publish(), name="publish")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.raft is not None:
            await self.raft.stop()
        if self.transport is not None:
            await self.transport.stop()
        for fut, _ in self._waiting.values():
            if not fut.done():
                fut.set_exception(errors.ErrStopped)
        if self.raft is not None:
            self.raft.wal.close()
        if self.backend is not None:
            self.backend.sync()
            self.backend.close()
        self._stopped.set()

    async def wait_removed_or_stopped(self) -> None:
        await self._stopped.wait()

    def _open_backend(self) -> None:
        self.backend = Backend(self.cfg.backend_path)
        self.store = KVStore(self.backend)
        self.applier = Applier(self.store)
        self.applier.register("member_change", self._apply_member_change)
        self.applier.register("fence", self._apply_fence)
        self.membership = Membership(self.backend)
        with self.backend.begin_read() as txn:
            cursor = txn.cursor(db=self.backend.db("meta"))
            self._fenced = set()
            if cursor.set_range(_FENCE_PREFIX):
                for key in cursor.iternext(values=False):
                    if not key.startswith(_FENCE_PREFIX):
                        break
                    self._fenced.add(int.from_bytes(key[len(_FENCE_PREFIX):], "big"))

    async def _publish(self) -> None:
        """Announce this member's name and client URLs to the cluster (etcd's publish), until it sticks."""
        cfg = self.cfg
        member = rpc_pb2.Member(ID=self.member_id, name=cfg.name, clientURLs=cfg["advertise-client-urls"])
        while True:
            current = self.membership.members.get(self.member_id)
            if current is not None and current.name == member.name and \
                    list(current.clientURLs) == list(member.clientURLs):
                return
            if not self.raft.lead:
                await self._leader_changed.wait()
                continue
            try:
                await self._propose(member_change=MemberChange(kind=MemberChange.PUBLISH, member=member))
                log(logger, logging.INFO, "published local member to cluster through raft",
                    **{"local-member-id": f"{self.member_id:x}", "cluster-id": f"{self.cluster_id:x}"})
                return
            except errors.EtcdError:
                await asyncio.sleep(self.tick_seconds)

    # ---- Raft's outputs (ReadyHandler) ---------------------------------------------------------

    def on_soft_state(self, soft: SoftState) -> None:
        if soft.lead:
            log(logger, logging.INFO, f"raft.node: {self.member_id:x} elected leader {soft.lead:x} at term "
                f"{self.raft.term}")
        else:
            log(logger, logging.INFO, f"raft.node: {self.member_id:x} lost leader")
        self._leader_changed.set()
        self._leader_changed = asyncio.Event()

    def apply(self, entries: list[raft_pb2.Entry]) -> None:
        batch: list[tuple[int, int, InternalRequest]] = []
        conf_changes: dict[int, raft_pb2.ConfChange] = {}
        for entry in entries:
            if entry.type == M.EntryConfChange:
                cc = raft_pb2.ConfChange.FromString(entry.data)
                conf_changes[entry.index] = cc
                request = InternalRequest.FromString(cc.context)
            elif entry.data:
                request = InternalRequest.FromString(entry.data)
            else:
                continue
            if request.ID in self._fenced:
                continue  # its proposer already reported that it failed
            if request.HasField("fence"):
                self._fenced.add(request.fence.request_id)
            waiting = self._waiting.get(request.ID)
            batch.append((entry.index, entry.term, waiting[1] if waiting else request))
        results = self.applier.apply_batch(batch) if batch else []
        for (index, term, request), result in zip(batch, results):
            cc = conf_changes.get(index)
            if cc is not None:
                self._apply_conf_change_to_raft(cc, request, result)
            waiting = self._waiting.pop(request.ID, None)
            if waiting is None or result is None or waiting[0].done():
                continue
            response, _events = result
            if isinstance(response, errors.EtcdError):
                waiting[0].set_exception(response)
            else:
                self._fill_header(response.header, term)
                waiting[0].set_result(response)
        self.applied_index = entries[-1].index
        self._wake_applied_waiters()

    def _apply_conf_change_to_raft(self, cc: raft_pb2.ConfChange, request: InternalRequest, result) -> None:
        refused = result is not None and isinstance(result[0], errors.EtcdError)
        if refused:  # the member list refused it: Raft's configuration must not change either
            self.raft.node.apply_conf_change(raft_pb2.ConfChange(type=M.ConfChangeUpdateNode, node_id=cc.node_id))
            return
        self.raft.node.apply_conf_change(cc)
        change = request.member_change
        peer_id = change.member.ID
        if peer_id == self.member_id:
            if change.kind == MemberChange.REMOVE:
                self._removed_from_cluster()
            return
        if change.kind == MemberChange.REMOVE:
            self.transport.remove_peer(peer_id)
        elif change.kind in (MemberChange.ADD, MemberChange.ADD_LEARNER) and peer_id not in self.membership.removed:
            # (a replayed add of a member removed later must not resurrect it)
            self.transport.add_peer(peer_id, list(change.member.peerURLs))

    def _apply_member_change(self, w, change: MemberChange) -> rpc_pb2.MemberListResponse:
        """Applier handler: the member list changes inside the batch's write transaction."""
        self.membership.check(change)
        self.membership.apply(w.txn, change)
        if change.kind == MemberChange.UPDATE and change.member.ID != self.member_id:
            self.transport.update_peer(change.member.ID, list(change.member.peerURLs))
        return rpc_pb2.MemberListResponse(members=self.membership.sorted_members())

    def _apply_fence(self, w, fence: raft_internal_pb2.Fence) -> raft_internal_pb2.FenceResponse:
        w.txn.put(_FENCE_PREFIX + fence.request_id.to_bytes(8, "big"), b"", db=self.backend.db("meta"))
        return raft_internal_pb2.FenceResponse()

    def on_read_states(self, states: list[ReadState]) -> None:
        for state in states:
            fut = self._read_states.pop(state.request_ctx, None)
            if fut is not None and not fut.done():
                fut.set_result(state.index)

    def after_advance(self) -> None:
        if self.applied_index - self.raft.storage.snapshot().metadata.index >= self.cfg["snapshot-count"]:
            self._snapshot()

    def snapshot_file(self) -> str:
        """A consistent copy of the backend's data file, for a follower that needs a snapshot."""
        tmp = tempfile.mkdtemp(prefix="snap-", dir=os.path.dirname(self.cfg.backend_path))
        self.backend.copy_to(tmp, compact=True)
        path = tmp + ".db"
        os.replace(os.path.join(tmp, "data.mdb"), path)
        shutil.rmtree(tmp)
        return path

    def _snapshot(self) -> None:
        """Record a Raft snapshot at the applied index and release the log behind it."""
        index = self.applied_index
        storage = self.raft.storage
        conf = raft_pb2.ConfState(voters=self.membership.voters(), learners=self.membership.learners())
        storage.create_snapshot(index, conf, b"")
        self.backend.sync()  # the WAL below this point may go: the backend must hold it durably
        self.raft.wal.save_snapshot(index, storage.term(index))
        # keep some entries for slow followers to catch up from without a snapshot
        compact_to = index - self.cfg["experimental-snapshot-catchup-entries"]
        if compact_to > storage.first_index():
            storage.compact(compact_to)
            self.raft.wal.release_before(compact_to)
        log(logger, logging.INFO, "saved snapshot", **{"snapshot-index": index})

    # ---- peer transport callbacks --------------------------------------------------------------

    def _on_peer_message(self, from_id: int, data: bytes) -> None:
        try:
            self.raft.step(raft_pb2.Message.FromString(data))
        except Exception as e:  # noqa: BLE001 - a Raft invariant broke: the member cannot go on safely
            self.platform.fatal(f"raft: stepping a message from {from_id:x} failed", e)

    def _on_unreachable(self, peer_id: int) -> None:
        self.raft.report_unreachable(peer_id)

    def _on_rejected(self, rejection: Rejection) -> None:
        # A removed follower may never apply its own removal: the leader stops replicating to it
        # once the change is applied. The peers refusing it tell it instead (as etcd's rafthttp).
        if not rejection.inbound and rejection.status is Status.MEMBER_REMOVED:
            self._removed_from_cluster()

    def _removed_from_cluster(self) -> None:
        if not self._stopped.is_set():
            log(logger, logging.WARNING, "the member has been permanently removed from the cluster")
            log(logger, logging.WARNING, "data-dir used by this member must be removed")
            # Like etcd, linger a moment: a removed leader's followers learn that the removal is
            # committed from its next heartbeats, and elect a new leader sooner.
            asyncio.get_running_loop().call_later(min(1.0, 10 * self.tick_seconds), self._stopped.set)

    def _sync_peers(self, extra: list[rpc_pb2.Member] | tuple = ()) -> None:
        """Give the transport every member (and ``extra``) to talk to; refuse removed IDs."""
        for removed in self.membership.removed:  # a removed member must not come back
            self.transport.remove_peer(removed)
        known = set(self.transport.peers())
        for member in [*self.membership.members.values(), *extra]:
            if member.ID != self.member_id and member.ID not in known:
                self.transport.add_peer(member.ID, list(member.peerURLs))
                known.add(member.ID)

    async def _on_snapshot(self, from_id: int, metadata: bytes, path: str) -> None:
        """The leader sent its database: swap it in, then hand Raft the snapshot message."""
        message = raft_pb2.Message.FromString(metadata)
        log(logger, logging.INFO, "receiving database snapshot", **{"from": f"{from_id:x}",
            "snapshot-index": message.snapshot.metadata.index})
        self.backend.close()
        os.replace(path, os.path.join(self.cfg.backend_path, "data.mdb"))
        self._open_backend()
        # Raft resumes applying after the snapshot's index; the database may already hold some of
        # the entries that follow (apply skips those), so track Raft's position, not the store's.
        self.applied_index = message.snapshot.metadata.index
        self._sync_peers()
        self.raft.step(message)

    # ---- helpers ---------------------------------------------------------------------------

    def _fill_header(self, header: rpc_pb2.ResponseHeader, term: int | None = None) -> None:
        header.cluster_id = self.cluster_id
        header.member_id = self.member_id
        header.raft_term = self.raft.term if term is None else term

    def header(self, revision: bool = True) -> rpc_pb2.ResponseHeader:
        header = rpc_pb2.ResponseHeader(revision=self.store.rev if revision else 0)
        self._fill_header(header)
        return header

    @property
    def is_leader(self) -> bool:
        return self.raft.lead == self.member_id

    @property
    def is_learner(self) -> bool:
        member = self.membership.members.get(self.member_id)
        return bool(member and member.isLearner)

    async def _within_timeout(self, fut: asyncio.Future) -> Any:
        try:
            return await asyncio.wait_for(fut, self.request_timeout)
        except asyncio.TimeoutError:
            raise (errors.ErrNoLeader if not self.raft.lead else errors.ErrTimeout) from None

    async def _propose(self, conf_change: int | None = None, **request: Any) -> Any:
        internal = InternalRequest(ID=next(self._ids), **request)
        data = internal.SerializeToString()
        if len(data) > self.max_request_bytes:
            raise errors.ErrRequestTooLarge
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting[internal.ID] = (future, internal)
        timer = loop.call_later(self.request_timeout, self._expire, internal.ID)
        try:
            if conf_change is None:
                self.raft.propose(data)
            else:
                node_id = internal.member_change.member.ID
                try:
                    self.raft.propose_conf_change(raft_pb2.ConfChange(type=conf_change, node_id=node_id,
                                                                      context=data, id=internal.ID))
                except ProposalDropped:
                    pass  # no leader to take it now: like etcd, the request times out
            result = await future
            if isinstance(result, _Expired):
                return await self._settle(internal.ID, result.late)
            return result
        finally:
            timer.cancel()
            self._waiting.pop(internal.ID, None)

    def _expire(self, request_id: int) -> None:
        """The request timeout passed: wake the proposer, and keep listening for the request."""
        waiting = self._waiting.get(request_id)
        if waiting is not None and not waiting[0].done():
            late = asyncio.get_running_loop().create_future()
            self._waiting[request_id] = (late, waiting[1])
            waiting[0].set_result(_Expired(late))

    async def _settle(self, request_id: int, late: asyncio.Future) -> Any:
        """The request timed out: commit a fence after which it can never apply. If it applied
        before the fence (``late`` resolved), that is its outcome; if not, the failure we report
        is definite. Only when not even the fence commits (no quorum) is the outcome unknown, as
        in etcd."""
        fence = InternalRequest(ID=next(self._ids), fence=raft_internal_pb2.Fence(request_id=request_id))
        fenced = asyncio.get_running_loop().create_future()
        self._waiting[fence.ID] = (fenced, fence)
        try:
            self.raft.propose(fence.SerializeToString())
            await asyncio.wait([late, fenced], timeout=self.request_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._waiting.pop(fence.ID, None)
        if late.done():
            return late.result()
        raise errors.ErrNoLeader if not self.raft.lead else errors.ErrTimeout

    # ---- linearizable reads: batched ReadIndex -----------------------------------------------

    async def _linearizable_barrier(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._reads_next.append(fut)
        self._read_wakeup.set()
        await self._within_timeout(fut)

    async def _read_loop(self) -> None:
        """One ReadIndex round at a time; reads arriving meanwhile share the next round."""
        loop = asyncio.get_running_loop()
        rounds = itertools.count(1)
        while True:
            await self._read_wakeup.wait()
            self._read_wakeup.clear()
            waiters, self._reads_next = self._reads_next, []
            waiters = [w for w in waiters if not w.done()]
            if not waiters:
                continue
            ctx = next(rounds).to_bytes(8, "big")
            state = loop.create_future()
            self._read_states[ctx] = state
            try:
                self.raft.read_index(ctx)
                index = await asyncio.wait_for(state, self.request_timeout)
                await self._wait_applied(index)
            except (asyncio.TimeoutError, ProposalDropped):
                self._read_states.pop(ctx, None)
                for w in waiters:
                    if not w.done():
                        w.set_exception(errors.ErrTimeout)
                continue
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    async def _wait_applied(self, index: int) -> None:
        if self.applied_index >= index:
            return
        fut = asyncio.get_running_loop().create_future()
        self._applied_waiters.append((index, fut))
        await fut

    def _wake_applied_waiters(self) -> None:
        if not self._applied_waiters:
            return
        still = []
        for index, fut in self._applied_waiters:
            if index <= self.applied_index:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((index, fut))
        self._applied_waiters = still

    # ---- KV --------------------------------------------------------------------------------

    async def range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        checks.check_range(req)
        if not req.serializable:
            await self._linearizable_barrier()
        resp = self.applier.range(req)
        self._fill_header(resp.header)
        return resp

    async def put(self, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        checks.check_put(req)
        return await self._propose(put=req)

    async def delete_range(self, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        checks.check_delete_range(req)
        return await self._propose(delete_range=req)

    async def txn(self, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        checks.check_txn(req, self.max_txn_ops)
        return await self._propose(txn=req)

    async def compact(self, req: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        return await self._propose(compaction=req)

    # ---- maintenance ---------------------------------------------------------------------------

    async def alarm(self, req: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        return rpc_pb2.AlarmResponse(header=self.header())

    async def status(self, req: rpc_pb2.StatusRequest) -> rpc_pb2.StatusResponse:
        return rpc_pb2.StatusResponse(
            header=self.header(), version=ETCD_VERSION, dbSize=self.backend.size(),
            dbSizeInUse=self.backend.size_in_use(), leader=self.raft.lead,
            raftIndex=self.raft.commit_index, raftTerm=self.raft.term,
            raftAppliedIndex=self.applied_index, isLearner=self.is_learner)

    async def hash_kv(self, req: rpc_pb2.HashKVRequest) -> rpc_pb2.HashKVResponse:
        with self.store.read() as view:
            crc, _ = view.hash_kv(req.revision)
            compact_rev = view.compact_rev
        return rpc_pb2.HashKVResponse(header=self.header(), hash=crc, compact_revision=compact_rev)

    async def authenticate(self, req: rpc_pb2.AuthenticateRequest) -> rpc_pb2.AuthenticateResponse:
        raise errors.ErrAuthNotEnabled  # auth cannot be enabled yet, so it never is

    async def auth_status(self, req: rpc_pb2.AuthStatusRequest) -> rpc_pb2.AuthStatusResponse:
        return rpc_pb2.AuthStatusResponse(header=self.header(), enabled=False)

    async def move_leader(self, req: rpc_pb2.MoveLeaderRequest) -> rpc_pb2.MoveLeaderResponse:
        if not self.is_leader:
            raise errors.ErrNotLeader
        target = self.membership.members.get(req.targetID)
        if target is None or target.isLearner:
            raise errors.ErrBadLeaderTransferee
        if req.targetID != self.member_id:
            self.raft.transfer_leader(req.targetID)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.request_timeout
            try:
                while self.raft.lead != req.targetID:
                    await asyncio.wait_for(self._leader_changed.wait(), deadline - loop.time())
            except asyncio.TimeoutError:
                raise errors.ErrTimeoutLeaderTransfer from None
        return rpc_pb2.MoveLeaderResponse()  # etcd 3.5 answers MoveLeader without a header

    # ---- cluster -------------------------------------------------------------------------------

    def _member_header(self) -> rpc_pb2.ResponseHeader:
        return self.header(revision=False)

    def _cluster_info(self) -> bytes:
        """What a member joining with --initial-cluster-state existing asks the peer transport for."""
        if self.member_id not in self.membership.members:
            raise RuntimeError("this member is still joining: it does not know the cluster yet")
        return rpc_pb2.MemberListResponse(header=self._member_header(),
                                          members=self.membership.sorted_members()).SerializeToString()

    async def member_list(self, req: rpc_pb2.MemberListRequest) -> rpc_pb2.MemberListResponse:
        if req.linearizable:
            await self._linearizable_barrier()
        return rpc_pb2.MemberListResponse(header=self._member_header(), members=self.membership.sorted_members())

    async def _change_members(self, change: MemberChange) -> list[rpc_pb2.Member]:
        self.membership.check(change)
        if change.kind in (MemberChange.UPDATE, MemberChange.PUBLISH):
            resp = await self._propose(member_change=change)
        else:
            resp = await self._propose(conf_change=_CONF_CHANGE_TYPE[change.kind], member_change=change)
        return list(resp.members)

    async def member_add(self, req: rpc_pb2.MemberAddRequest) -> rpc_pb2.MemberAddResponse:
        urls = bootstrap.check_peer_urls(req.peerURLs)
        member_id = added_member_id(urls, self.cfg["initial-cluster-token"], self.platform.wall_clock())
        member = rpc_pb2.Member(ID=member_id, peerURLs=urls,
                                isLearner=req.isLearner)
        kind = MemberChange.ADD_LEARNER if req.isLearner else MemberChange.ADD
        self.membership.check(MemberChange(kind=kind, member=member))
        if not req.isLearner and self.cfg["strict-reconfig-check"]:
            self._check_started_quorum(len(self.membership.voters()) + 1)
        members = await self._change_members(MemberChange(kind=kind, member=member))
        return rpc_pb2.MemberAddResponse(header=self._member_header(), member=member, members=members)

    async def member_remove(self, req: rpc_pb2.MemberRemoveRequest) -> rpc_pb2.MemberRemoveResponse:
        member = self.membership.members.get(req.ID)
        change = MemberChange(kind=MemberChange.REMOVE, member=rpc_pb2.Member(ID=req.ID))
        self.membership.check(change)
        if member is not None and not member.isLearner and self.cfg["strict-reconfig-check"]:
            self._check_started_quorum(len(self.membership.voters()) - 1, excluding=req.ID)
        members = await self._change_members(change)
        return rpc_pb2.MemberRemoveResponse(header=self._member_header(), members=members)

    async def member_update(self, req: rpc_pb2.MemberUpdateRequest) -> rpc_pb2.MemberUpdateResponse:
        urls = bootstrap.check_peer_urls(req.peerURLs)
        members = await self._change_members(MemberChange(kind=MemberChange.UPDATE,
                                                          member=rpc_pb2.Member(ID=req.ID, peerURLs=urls)))
        return rpc_pb2.MemberUpdateResponse(header=self._member_header(), members=members)

    async def member_promote(self, req: rpc_pb2.MemberPromoteRequest) -> rpc_pb2.MemberPromoteResponse:
        change = MemberChange(kind=MemberChange.PROMOTE, member=rpc_pb2.Member(ID=req.ID))
        self.membership.check(change)
        if not self.is_leader:
            return await self._forward_to_leader("MemberPromote", req, rpc_pb2.MemberPromoteResponse)
        progress = self.raft.node.status().progress
        learner = progress.get(req.ID)
        if learner is None or learner.match < LEARNER_READY_PERCENT * self.raft.commit_index:
            raise errors.ErrLearnerNotReady
        members = await self._change_members(change)
        return rpc_pb2.MemberPromoteResponse(header=self._member_header(), members=members)

    def _started_voters(self, excluding: int = 0) -> int:
        return sum(1 for v in self.membership.voters()
                   if v != excluding and (v == self.member_id or self.transport.is_active(v)))

    def _check_started_quorum(self, voters_after: int, excluding: int = 0) -> None:
        """etcd's strict reconfiguration check: after the change, the started voters must still
        make a quorum (an added voter has not started yet; a removed one no longer counts)."""
        if self._started_voters(excluding) < voters_after // 2 + 1:
            raise errors.ErrMemberNotEnoughStarted

    async def _forward_to_leader(self, method: str, req, response_type):
        leader = self.membership.members.get(self.raft.lead)
        if leader is None or not leader.clientURLs:
            raise errors.ErrNoLeader
        return await self.platform.call_member(list(leader.clientURLs), "Cluster", method, req, response_type,
                                               timeout=self.request_timeout)

    # ---- health --------------------------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        if not self.raft.lead:
            return False, "RAFT NO LEADER"
        return True, ""
