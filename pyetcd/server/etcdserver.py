"""The member: bootstrap from the data dir, propose writes, apply committed entries, serve reads.

Data flows one way (DESIGN §2): a write request is checked, proposed to Raft, made durable in
the WAL, committed by a quorum, applied to MVCC in a batch, and its result resolves the caller's
future (on whichever member the client asked: followers forward proposals to the leader and
apply the same entries). What is applied is always the logged entry, never the proposer's copy.
Linearizable reads wait for a ReadIndex round (read_index.py); serializable reads are served
locally at once. A database received from the leader replaces the backend only once Raft has
accepted its snapshot (snapshot.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from typing import Any

from pyetcd import ETCD_VERSION, errors
from pyetcd.logutil import log
from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd.proto.raftpb import raft_pb2
from pyetcd.fileutil import fsync_file
from pyetcd.raft import Config, ProposalDropped, RawNode, ReadState, SoftState
from pyetcd.server import bootstrap, checks, snapshot
from pyetcd.server.alarms import AlarmStore
from pyetcd.server.apply import Applier
from pyetcd.server.auth.api import AuthMethods, caller
from pyetcd.server.compaction import Compactor
from pyetcd.server.config import ServerConfig, parse_duration
from pyetcd.server.defrag import DefragMethods
from pyetcd.server.idutil import RequestIDs
from pyetcd.server.lease_api import LeaseMethods, new_lessor
from pyetcd.server.membership import MemberChange, Membership, added_member_id
from pyetcd.server.metrics import Metrics
from pyetcd.server.platform import Platform
from pyetcd.server.quota import BackendQuota, put_cost, txn_cost
from pyetcd.server.raft_node import RaftNode
from pyetcd.server.v3compactor import AutoCompactor, parse_retention
from pyetcd.server.read_index import ReadIndex
from pyetcd.server.v2_api import V2Store
from pyetcd.storage.backend import Backend
from pyetcd.storage.mvcc import KVStore
from pyetcd.storage.watchable_store import WatchableStore
from pyetcd.transport import Rejection, Status, TransportOptions

logger = logging.getLogger("pyetcd.server")

InternalRequest = raft_internal_pb2.InternalRaftRequest
M = raft_pb2
# A learner may be promoted once its log is this close to the leader's (etcd: 90%).
LEARNER_READY_PERCENT = 0.9

FENCE_PREFIX = b"fence/"
# A request is skipped if it reaches the log more than this many entries after the commit index
# its proposer saw (see InternalRaftRequest.max_index): generous, but it bounds how long a fence
# must be kept.
REQUEST_LIFETIME_ENTRIES = 1_000_000
# How often the backend checkpoints while it is written to. Pages freed since the last checkpoint
# are reused only after the next one (storage/checkpoint.py): this bounds the file's growth.
CHECKPOINT_INTERVAL = 0.5
# The backend's batch (backend.py) is committed this long after it opens, or once it holds this
# many requests (--backend-batch-interval, --backend-batch-limit: etcd's defaults) or request
# bytes; a checkpoint, a snapshot copy and the stop commit it at once.
BACKEND_BATCH_INTERVAL = 0.1
BACKEND_BATCH_LIMIT = 10_000
BACKEND_BATCH_BYTES = 32 << 20


class _Expired:
    """What a proposer's future holds when the request timeout passed first."""

    __slots__ = ("late",)

    def __init__(self, late: asyncio.Future) -> None:
        self.late = late  # resolved if the request applies after all

_CONF_CHANGE_TYPE = {
    MemberChange.ADD: M.ConfChangeAddNode, MemberChange.ADD_LEARNER: M.ConfChangeAddLearnerNode,
    MemberChange.PROMOTE: M.ConfChangeAddNode, MemberChange.REMOVE: M.ConfChangeRemoveNode,
}


class EtcdServer(LeaseMethods, AuthMethods, DefragMethods):
    """One etcd member. Create, ``await start()``, serve, ``await stop()``."""

    def __init__(self, cfg: ServerConfig, platform: Platform | None = None) -> None:
        self.cfg = cfg
        self.platform = platform or Platform()
        self.fs = self.platform.fs
        self.max_request_bytes: int = cfg["max-request-bytes"]
        self.max_txn_ops: int = cfg["max-txn-ops"]
        tick_ms = cfg["heartbeat-interval"]
        self.election_ticks = max(2, cfg["election-timeout"] // tick_ms)
        self.tick_seconds = tick_ms / 1000
        # etcd's request timeout: 5 s plus two election timeouts
        self.request_timeout = 5 + 2 * cfg["election-timeout"] / 1000
        self.batch_interval = parse_duration(cfg["backend-batch-interval"]) or BACKEND_BATCH_INTERVAL
        self.batch_limit = cfg["backend-batch-limit"] or BACKEND_BATCH_LIMIT
        self.metrics = Metrics()
        self.lessor = new_lessor(self)
        self._init_auth()
        self.alarms = AlarmStore()
        self.quota = BackendQuota(cfg["quota-backend-bytes"])
        self.member_id = 0
        self.cluster_id = 0
        self.applied_index = 0
        self._ids: RequestIDs | None = None
        # request ID -> (the proposer's future, the bytes it proposed)
        self._waiting: dict[int, tuple[asyncio.Future, bytes]] = {}
        self._fenced: dict[int, int] = {}  # request ID -> its max_index: must never apply (see Fence)
        self._applied_waiters: list[tuple[int, asyncio.Future]] = []
        self._restored_index = 0  # the last snapshot Raft accepted from the leader
        self._stashed: dict[tuple[int, int], str] = {}  # (index, term) of that snapshot -> its database
        self._checkpoint: asyncio.Task | None = None
        # held while a worker thread copies the backend, and by a snapshot install (which closes it)
        self._copy_lock = asyncio.Lock()
        self._defrag_lock = asyncio.Lock()
        self._leaving: asyncio.Task | None = None
        self._peer_ids: set[int] = set()  # the transport's peers
        self._peer_lookup: asyncio.Task | None = None
        self._checkpoint_at = 0.0  # loop time of the last one
        self._batch_commit: asyncio.TimerHandle | None = None
        self._batched = (0, 0)  # requests, bytes in the backend's open batch
        self._leader_changed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._stopped = asyncio.Event()
        self.backend: Backend | None = None
        self.store: KVStore | None = None
        self.applier: Applier | None = None
        self.membership: Membership | None = None
        self.raft: RaftNode | None = None
        self.transport = None
        self.read_index: ReadIndex | None = None
        self.watchable = WatchableStore(lambda: self.store)
        self.v2 = V2Store()
        self.watch_progress_interval = parse_duration(cfg["experimental-watch-progress-notify-interval"])
        self.compactor = Compactor(lambda: self.store, cfg["experimental-compaction-batch-limit"],
                                   on_failure=lambda e: self.platform.fatal("compaction failed", e))

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.cfg
        boot = await bootstrap.bootstrap(cfg, self.platform)
        self.member_id, self.cluster_id = boot.member_id, boot.cluster_id
        self._use_backend(boot.backend)
        self._ids = RequestIDs(self.member_id, self.fs, cfg.member_dir)
        self.applied_index = self.store.consistent_index
        log(logger, logging.INFO, "starting local member",
            **{"local-member-id": f"{self.member_id:x}", "cluster-id": f"{self.cluster_id:x}"})
        node = RawNode(Config(id=self.member_id, storage=boot.storage,
                              rng=random.Random(self.platform.rng.getrandbits(64)),
                              election_tick=self.election_ticks, heartbeat_tick=1, applied=self.applied_index,
                              pre_vote=cfg["pre-vote"], check_quorum=True))
        self.transport = self.platform.transport(
            self.member_id, self.cluster_id, on_message=self._on_peer_message, on_snapshot=self._on_snapshot,
            on_unreachable=self._on_unreachable, on_rejected=self._on_rejected, cluster_info=self._cluster_info,
            options=TransportOptions(snapshot_dir=cfg.snap_dir),
            rng=random.Random(self.platform.rng.getrandbits(64)), logger=logging.getLogger("pyetcd.transport"))
        await self.transport.start(cfg["listen-peer-urls"])
        self._sync_peers(boot.peers)
        boot.wal.on_fsync = self.metrics.wal_fsync.observe
        self.raft = RaftNode(node, boot.storage, boot.wal, self.transport, self, tick_seconds=self.tick_seconds,
                             fatal=self.platform.fatal, fsync=not cfg["unsafe-no-fsync"])
        self.read_index = ReadIndex(self.raft.read_index, self._ids.next, self._wait_applied,
                                    lambda: bool(self.raft.lead), self.request_timeout)
        self.raft.start()
        if self.membership.voters() == [self.member_id]:
            node.campaign()  # alone: no one to wait for
        elif cfg["initial-election-tick-advance"]:
            for _ in range(self.election_ticks - 1):
                node.tick()
        self.compactor.start()
        self.watchable.start()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.read_index.run(), name="linearizable-reads"),
                       loop.create_task(self._publish(), name="publish"),
                       loop.create_task(self._run_leases(), name="leases")]
        mode = self.cfg["auto-compaction-mode"]
        retention = parse_retention(mode, self.cfg["auto-compaction-retention"])
        if retention > 0:
            auto = AutoCompactor(mode, retention, lambda: self.store.rev, lambda: self.is_leader,
                                 lambda rev: self.compact(rpc_pb2.CompactionRequest(revision=rev)))
            self._tasks.append(loop.create_task(auto.run(), name="auto-compaction"))
        if cfg["enable-v2"]:
            self._tasks.append(loop.create_task(self.v2.run_sync(self), name="v2-sync"))

    async def stop(self) -> None:
        await self._transfer_leadership_on_stop()
        for task in [*self._tasks, *(t for t in (self._leaving, self._peer_lookup) if t is not None)]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.compactor.stop()
        await self.watchable.stop()
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
        if self._batch_commit is not None:
            self._batch_commit.cancel()
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
            self.backend.checkpoint()
            self.backend.close()
        self._stopped.set()

    async def wait_removed_or_stopped(self) -> None:
        await self._stopped.wait()

    def _use_backend(self, backend: Backend, *, same_contents: bool = False) -> None:
        self.backend = backend
        backend.on_batch_opened = self._schedule_batch_commit
        self.lessor.use_backend(backend, same_contents=same_contents)
        self.store = KVStore(backend, leases=self.lessor)
        self.applier = Applier(self.store)
        self.lessor.register(self.applier)
        self.alarms.use_backend(backend)
        self.alarms.register(self.applier)
        self.auth.use_backend(backend)
        self.auth.register(self.applier)
        self.applier.register("member_change", self._apply_member_change)
        self.applier.register("fence", self._apply_fence)
        self.membership = Membership(backend)
        self.v2.use_backend(backend, len(self.membership.members))
        self.v2.register(self.applier, self.membership.check)
        self._fenced = {}
        with backend.begin_read() as txn:
            cursor = txn.cursor(db=backend.db("meta"))
            if cursor.set_range(FENCE_PREFIX):
                for key, value in cursor.iternext():
                    if not key.startswith(FENCE_PREFIX):
                        break
                    self._fenced[int.from_bytes(key[len(FENCE_PREFIX):], "big")] = int.from_bytes(value, "big")

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
        if soft.lead:
            self.metrics.leader_changes.inc()
        self._leadership_changed(soft.lead)
        self._leader_changed.set()
        self._leader_changed = asyncio.Event()

    def apply(self, entries: list[raft_pb2.Entry]) -> None:
        batch: list[tuple[int, int, InternalRequest]] = []
        logged: list[bytes] = []  # each request's bytes as logged, to route its result
        conf_changes: dict[int, raft_pb2.ConfChange] = {}
        for entry in entries:
            if entry.type == M.EntryConfChange:
                cc = raft_pb2.ConfChange.FromString(entry.data)
                data = cc.context
            elif entry.data:
                cc, data = None, entry.data
            else:
                continue
            request = InternalRequest.FromString(data)
            if request.ID in self._fenced or (request.max_index and entry.index > request.max_index):
                self._skip(entry.index, request.ID, cc)  # its proposer has reported, or will report, failure
                continue
            if cc is not None:
                conf_changes[entry.index] = cc
            if request.HasField("fence"):
                self._fenced[request.fence.request_id] = request.fence.max_index
            batch.append((entry.index, entry.term, request))
            logged.append(data)
        # (the applied index is recorded even for entries that change nothing: a snapshot or a
        # checkpoint taken at Raft's applied index must find the backend there)
        results = self.applier.apply_batch(batch, through=(entries[-1].index, entries[-1].term))
        self._batched = (self._batched[0] + len(batch), self._batched[1] + sum(map(len, logged)))
        if self._batched[0] >= self.batch_limit or self._batched[1] >= BACKEND_BATCH_BYTES:
            self._commit_batch()
        if any(request.HasField("compaction") for _, _, request in batch):
            self.compactor.notify()
        if self.watchable.synced.count:
            self.watchable.notify([change for result in results if result is not None for change in result[1]])
        for (index, term, request), data, result in zip(batch, logged, results):
            cc = conf_changes.get(index)
            if cc is not None and result is not None and index > self._restored_index:
                self._apply_conf_change_to_raft(cc, request, result)
            waiting = self._waiting.get(request.ID)
            if waiting is None or result is None or waiting[1] != data:
                continue  # not ours (or only its ID is: another member's request with the same ID)
            del self._waiting[request.ID]
            response, _events = result
            if waiting[0].done():
                continue
            if isinstance(response, errors.EtcdError):
                waiting[0].set_exception(response)
            else:
                self._fill_header(response.header, term)
                waiting[0].set_result(response)
        self.applied_index = entries[-1].index
        self._wake_applied_waiters()

    def _schedule_batch_commit(self) -> None:
        self._batched = (0, 0)
        if self._batch_commit is None:
            self._batch_commit = asyncio.get_running_loop().call_later(self.batch_interval, self._commit_batch)

    def _commit_batch(self) -> None:
        if self._batch_commit is not None:
            self._batch_commit.cancel()
            self._batch_commit = None
        if self.backend.pending is None:
            return
        start = time.monotonic()
        self.backend.commit()
        self.metrics.backend_commit.observe(time.monotonic() - start)

    def _skip(self, index: int, request_id: int, cc: raft_pb2.ConfChange | None) -> None:
        """A fenced or expired request's entry: it changes nothing, on every member alike."""
        if cc is not None and index > self._restored_index:
            self.raft.node.apply_conf_change(raft_pb2.ConfChange(type=M.ConfChangeUpdateNode, node_id=cc.node_id))
        waiting = self._waiting.get(request_id)
        if waiting is not None and not waiting[0].done():
            self.metrics.proposals_failed.inc()
            waiting[0].set_exception(errors.ErrTimeout)

    def _apply_conf_change_to_raft(self, cc: raft_pb2.ConfChange, request: InternalRequest, result) -> None:
        if isinstance(result[0], errors.EtcdError):
            # the member list refused it: Raft's configuration must not change either
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
            self._peer_ids.discard(peer_id)
        elif change.kind in (MemberChange.ADD, MemberChange.ADD_LEARNER) and peer_id not in self.membership.removed:
            self._add_peer(peer_id, list(change.member.peerURLs))

    def _apply_member_change(self, w, change: MemberChange) -> rpc_pb2.MemberListResponse:
        """Applier handler: the member list changes inside the batch's write transaction."""
        self.membership.check(change)
        self.membership.apply(w.txn, change)
        if change.kind == MemberChange.UPDATE and change.member.ID != self.member_id:
            self.transport.update_peer(change.member.ID, list(change.member.peerURLs))
        return rpc_pb2.MemberListResponse(members=self.membership.sorted_members())

    def _apply_fence(self, w, fence: raft_internal_pb2.Fence) -> raft_internal_pb2.FenceResponse:
        meta = self.backend.db("meta")
        w.txn.put(FENCE_PREFIX + fence.request_id.to_bytes(8, "big"), fence.max_index.to_bytes(8, "big"), db=meta)
        # Forget fences whose request can no longer apply anyway (the log is past its max_index);
        # done here so that every member forgets them at the same point of the log.
        for request_id, max_index in list(self._fenced.items()):
            if 0 < max_index < self.applier.index:
                del self._fenced[request_id]
                w.txn.delete(FENCE_PREFIX + request_id.to_bytes(8, "big"), db=meta)
        return raft_internal_pb2.FenceResponse()

    def on_read_states(self, states: list[ReadState]) -> None:
        self.read_index.on_read_states(states)

    def on_proposals_dropped(self, request_ids: list[int]) -> None:
        error = self._dropped_error()
        for request_id in request_ids:
            waiting = self._waiting.get(request_id)
            if waiting is not None and not waiting[0].done():
                self.metrics.proposals_failed.inc()
                waiting[0].set_exception(error)

    def _dropped_error(self) -> type[errors.EtcdError]:
        return errors.ErrNoLeader if not self.raft.lead else errors.ErrTimeout

    async def after_advance(self) -> None:
        if self.applied_index - self.raft.storage.snapshot().metadata.index >= self.cfg["snapshot-count"]:
            await self._snapshot()
        elif (self._checkpoint is None or self._checkpoint.done()) and \
                asyncio.get_running_loop().time() - self._checkpoint_at >= CHECKPOINT_INTERVAL:
            self._checkpoint = asyncio.get_running_loop().create_task(self._checkpoint_backend(), name="checkpoint")

    async def _checkpoint_backend(self) -> None:
        self._checkpoint_at = asyncio.get_running_loop().time()
        try:
            await asyncio.to_thread(self.backend.begin_checkpoint())
        except Exception as e:  # noqa: BLE001 - a backend that cannot be made durable cannot go on
            self.platform.fatal("backend checkpoint failed", e)

    async def _snapshot(self) -> None:
        """Record a Raft snapshot at the applied index and release the log behind it. The WAL
        below it goes only once a backend checkpoint covers it (it is what a power loss returns
        the backend to)."""
        index = self.applied_index
        storage = self.raft.storage
        conf = raft_pb2.ConfState(voters=self.membership.voters(), learners=self.membership.learners())
        storage.create_snapshot(index, conf, b"")
        self._checkpoint_at = asyncio.get_running_loop().time()
        await asyncio.to_thread(self.backend.begin_checkpoint())
        await asyncio.to_thread(self.raft.wal.save_snapshot, index, storage.term(index))
        # keep some entries for slow followers to catch up from without a snapshot
        compact_to = index - self.cfg["experimental-snapshot-catchup-entries"]
        if compact_to > storage.first_index():
            storage.compact(compact_to)
            self.raft.wal.release_before(compact_to)
        log(logger, logging.INFO, "saved snapshot", **{"snapshot-index": index})

    async def snapshot_copy(self) -> tuple[str, raft_pb2.SnapshotMetadata]:
        """A consistent copy of the backend for a follower, and what it holds: everything
        applied (the batch is committed first)."""
        async with self._copy_lock:
            self.backend.commit()
            name = uuid.UUID(int=self.platform.rng.getrandbits(128)).hex
            return await asyncio.to_thread(snapshot.make_copy, self.backend, self.cfg.snap_dir, name)

    # ---- snapshots from the leader -------------------------------------------------------------

    async def _on_snapshot(self, from_id: int, data: bytes, path: str) -> None:
        """The leader sent its database (spooled to ``path``, beside the backend). Raft judges the
        snapshot first; only one it accepted is kept, to be installed by the Ready that carries
        it. Raising refuses the transfer (the backend is untouched)."""
        message = raft_pb2.Message.FromString(data)
        meta = message.snapshot.metadata
        log(logger, logging.INFO, "receiving database snapshot", **{"from": f"{from_id:x}",
            "snapshot-index": meta.index, "snapshot-term": meta.term})
        await asyncio.to_thread(snapshot.check_received, path, message)
        await asyncio.to_thread(fsync_file, self.fs, path)
        if self._stopped.is_set():
            return
        try:
            accepted = self.raft.step_snapshot(message)
        except Exception as e:  # noqa: BLE001 - as for any peer message: a Raft invariant broke
            self.platform.fatal(f"raft: stepping a snapshot from {from_id:x} failed", e)
        if not accepted:
            log(logger, logging.INFO, "ignored database snapshot: raft did not take it",
                **{"from": f"{from_id:x}", "snapshot-index": meta.index, "snapshot-term": meta.term})
            return
        stash = snapshot.stash_path(self.cfg.snap_dir, meta.index, meta.term)
        self.fs.rename(path, stash)
        self._stashed[(meta.index, meta.term)] = stash
        self._restored_index = meta.index

    async def install_snapshot(self, snap: raft_pb2.Snapshot) -> None:
        """ReadyHandler: put the database of a snapshot Raft accepted in place of the backend.
        From the WAL marker on the member cannot go back: any failure is fatal, and the restart
        finishes the install from the stash (snapshot.finish_install)."""
        meta = snap.metadata
        stash = self._stashed.pop((meta.index, meta.term), None)
        if stash is None:
            self.platform.fatal(f"raft installs snapshot {meta.index}@{meta.term}, whose database is not here", None)
        async with self._copy_lock:  # (a worker thread copying the backend finishes first)
            self.fs.fsync_dir(self.cfg.snap_dir)
            await asyncio.to_thread(self.raft.wal.save_snapshot, meta.index, meta.term, discard_log=True)
            # No await from here until the new backend is in use: nothing may touch a closed one.
            if self.applied_index >= meta.index:
                self.platform.fatal(f"raft installs snapshot {meta.index}, but {self.applied_index} is applied", None)
            self._swap_backend(stash)
        if self.store.consistent_index != meta.index:
            self.platform.fatal(f"the installed database holds index {self.store.consistent_index}, "
                                f"not the snapshot's {meta.index}", None)
        self.applied_index = meta.index
        for other in [key for key in self._stashed if key[0] <= meta.index]:
            self.fs.unlink(self._stashed.pop(other))
        log(logger, logging.INFO, "installed database snapshot", **{"snapshot-index": meta.index})
        self._sync_peers()
        if self.member_id in self.membership.removed:
            self._removed_from_cluster()
        self._wake_applied_waiters()

    def _swap_backend(self, stash: str, *, defragmented: bool = False) -> None:
        """Close the backend, move the database file ``stash`` (fsynced) in its place and use it.
        Blocking, and no await inside: nothing may touch the closed backend. A defragmented
        copy holds exactly what the backend held; the old file is fsynced before its checkpoint
        goes (snapshot.swap_in), so a power loss before the rename finds it whole."""
        watched_rev = self.store.rev
        self.backend.close()
        if defragmented:
            fsync_file(self.fs, self.backend.data_file)
        snapshot.swap_in(self.fs, stash, self.cfg.backend_path)
        self._use_backend(Backend(self.cfg.backend_path, fs=self.fs), same_contents=defragmented)
        self.compactor.notify()  # the new database may carry a compaction of its own to finish
        self.watchable.restore(watched_rev)

    # ---- peer transport callbacks --------------------------------------------------------------

    def _on_peer_message(self, from_id: int, data: bytes) -> None:
        if from_id not in self._peer_ids:
            self._unknown_sender(from_id)
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
        if self._stopped.is_set() or self._leaving is not None:
            return
        log(logger, logging.WARNING, "the member has been permanently removed from the cluster")
        log(logger, logging.WARNING, "data-dir used by this member must be removed")
        self._leaving = asyncio.get_running_loop().create_task(self._leave(), name="leave")

    async def _leave(self) -> None:
        """Stop a moment after the removal. A removed member first waits (for a while) until
        another member leads (not only until it stops leading itself, sim F8): Raft hands leadership over, and the new leader can commit the
        removal only with this member's acknowledgement while its configuration still counts it
        (in a two-member cluster the survivor could otherwise never commit again)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10 * self.election_ticks * self.tick_seconds
        while self.raft.lead in (0, self.member_id) and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - loop.time()):
                    await self._leader_changed.wait()
        # Like etcd, linger: the other members learn that the removal is committed from this
        # member's next messages (heartbeats, acknowledgements), and elect a new leader sooner.
        await asyncio.sleep(min(1.0, 10 * self.tick_seconds))
        self._stopped.set()

    def _sync_peers(self, extra: list[rpc_pb2.Member] | tuple = ()) -> None:
        """Give the transport every member (and ``extra``) to talk to; refuse removed IDs."""
        for removed in self.membership.removed:  # a removed member must not come back
            self.transport.remove_peer(removed)
            self._peer_ids.discard(removed)
        for member in [*self.membership.members.values(), *extra]:
            if member.ID != self.member_id and member.ID not in self._peer_ids:
                self._add_peer(member.ID, list(member.peerURLs))

    def _add_peer(self, peer_id: int, urls: list[str]) -> None:
        self.transport.add_peer(peer_id, urls)
        self._peer_ids.add(peer_id)

    def _unknown_sender(self, sender: int) -> None:
        """A member this one does not know spoke (one added while it was down, its member list
        older than the sender): ask the members it knows who is in the cluster now, so that it
        can answer (sim F11; etcd's rafthttp learns the sender's URLs from its request)."""
        if sender in self.membership.removed or (self._peer_lookup and not self._peer_lookup.done()):
            return
        self._peer_lookup = asyncio.get_running_loop().create_task(self._look_up_peers(sender), name="peer-lookup")

    async def _look_up_peers(self, sender: int) -> None:
        urls = [url for m in self.membership.members.values() if m.ID != self.member_id for url in m.peerURLs]
        try:  # (a peer as far behind as this member does not know the sender either: ask on)
            cid, members = await self.platform.fetch_cluster(urls, wanted=lambda ms: any(m.ID == sender for m in ms))
        except (ConnectionError, OSError, ValueError) as e:
            log(logger, logging.WARNING, "cannot learn the cluster's current members", error=str(e))
            await asyncio.sleep(self.election_ticks * self.tick_seconds)  # (before the next attempt)
            return
        if cid == self.cluster_id:
            for member in members:
                if member.ID != self.member_id and member.ID not in self._peer_ids \
                        and member.ID not in self.membership.removed:
                    log(logger, logging.INFO, "added a peer the member list does not have yet",
                        **{"remote-peer-id": f"{member.ID:x}"})
                    self._add_peer(member.ID, list(member.peerURLs))

    # ---- helpers ---------------------------------------------------------------------------

    def _fill_header(self, header: rpc_pb2.ResponseHeader, term: int | None = None) -> None:
        header.cluster_id = self.cluster_id
        header.member_id = self.member_id
        header.raft_term = self.raft.term if term is None else term

    def header(self, revision: bool = True) -> rpc_pb2.ResponseHeader:
        header = rpc_pb2.ResponseHeader(revision=self.store.rev if revision else 0)
        self._fill_header(header)
        return header

    def pending_proposals(self) -> int:
        return len(self._waiting)

    @property
    def is_leader(self) -> bool:
        return self.raft.lead == self.member_id

    @property
    def is_learner(self) -> bool:
        member = self.membership.members.get(self.member_id)
        return bool(member and member.isLearner)

    async def _propose(self, conf_change: int | None = None, **request: Any) -> Any:
        internal = InternalRequest(ID=self._ids.next(), max_index=self.raft.commit_index + REQUEST_LIFETIME_ENTRIES,
                                   **self.auth_header(), **request)
        data = internal.SerializeToString()
        if len(data) > self.max_request_bytes:
            raise errors.ErrRequestTooLarge
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting[internal.ID] = (future, data)
        timer = loop.call_later(self.request_timeout, self._expire, internal.ID)
        try:
            if conf_change is None:
                self.raft.propose(internal.ID, data)
            else:
                node_id = internal.member_change.member.ID
                try:
                    self.raft.propose_conf_change(raft_pb2.ConfChange(type=conf_change, node_id=node_id,
                                                                      context=data, id=internal.ID))
                except ProposalDropped:
                    raise self._dropped_error() from None
            result = await future
            if isinstance(result, _Expired):
                return await self._settle(internal, result.late)
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

    async def _settle(self, request: InternalRequest, late: asyncio.Future) -> Any:
        """The request timed out: commit a fence after which it can never apply. If it applied
        before the fence (``late`` resolved), that is its outcome; if not, the failure we report
        is definite. Only when not even the fence commits (no quorum) is the outcome unknown, as
        in etcd."""
        fence = InternalRequest(ID=self._ids.next(), max_index=request.max_index,
                                fence=raft_internal_pb2.Fence(request_id=request.ID, max_index=request.max_index))
        data = fence.SerializeToString()
        fenced = asyncio.get_running_loop().create_future()
        self._waiting[fence.ID] = (fenced, data)
        try:
            self.raft.propose(fence.ID, data)
            await asyncio.wait([late, fenced], timeout=self.request_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._waiting.pop(fence.ID, None)
            if fenced.done() and not fenced.cancelled():
                fenced.exception()  # (dropped with no leader: the outcome stays unknown)
        if late.done():
            return late.result()
        raise self._dropped_error()

    # ---- linearizable reads ------------------------------------------------------------------

    async def _wait_applied(self, index: int) -> None:
        if self.applied_index >= index:
            return
        fut = asyncio.get_running_loop().create_future()
        self._applied_waiters.append((index, fut))
        try:
            await fut
        finally:
            if not fut.done():
                fut.cancel()

    def _wake_applied_waiters(self) -> None:
        if not self._applied_waiters:
            return
        still = []
        for index, fut in self._applied_waiters:
            if fut.done():
                continue
            if index <= self.applied_index:
                fut.set_result(None)
            else:
                still.append((index, fut))
        self._applied_waiters = still

    # ---- KV --------------------------------------------------------------------------------

    async def range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        checks.check_range(req)
        self.check_range_permitted(req.key, req.range_end)
        if not req.serializable:
            await self.read_index.barrier()
        resp = self.applier.range(req)
        self._fill_header(resp.header)
        return resp

    async def put(self, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        checks.check_put(req)
        await self.check_quota(put_cost(req))
        return await self._propose(put=req)

    async def delete_range(self, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        checks.check_delete_range(req)
        return await self._propose(delete_range=req)

    async def txn(self, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        checks.check_txn(req, self.max_txn_ops)
        await self.check_quota(txn_cost(req))
        return await self._propose(txn=req)

    async def compact(self, req: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        resp = await self._propose(compaction=req)
        if req.physical:  # answer once the compacted history is gone from this member's backend
            await self.compactor.wait_physical(req.revision)
        return resp

    # ---- maintenance ---------------------------------------------------------------------------

    async def alarm(self, req: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        if req.action == rpc_pb2.AlarmRequest.GET:
            return rpc_pb2.AlarmResponse(header=self.header(), alarms=self.alarms.get(req.alarm))
        return await self._propose(alarm=req)

    async def check_quota(self, cost: int) -> None:
        """Refuse a request that would take the backend past the quota, and raise NOSPACE."""
        if self.quota.available(self.backend, cost):
            return
        with contextlib.suppress(errors.EtcdError):
            await self._propose(alarm=rpc_pb2.AlarmRequest(
                action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=self.member_id, alarm=rpc_pb2.NOSPACE))
        raise errors.ErrNoSpace

    async def status(self, req: rpc_pb2.StatusRequest) -> rpc_pb2.StatusResponse:
        return rpc_pb2.StatusResponse(
            header=self.header(), version=ETCD_VERSION, dbSize=self.backend.size(),
            dbSizeInUse=self.backend.size_in_use(), leader=self.raft.lead,
            raftIndex=self.raft.commit_index, raftTerm=self.raft.term,
            raftAppliedIndex=self.applied_index, isLearner=self.is_learner,
            errors=[f"memberID:{am.memberID} alarm:{rpc_pb2.AlarmType.Name(am.alarm)} " for am in self.alarms.get()])

    async def hash_kv(self, req: rpc_pb2.HashKVRequest) -> rpc_pb2.HashKVResponse:
        self.check_maintenance_admin()
        with self.store.read() as view:
            crc, _ = view.hash_kv(req.revision)
            compact_rev = view.compact_rev
        return rpc_pb2.HashKVResponse(header=self.header(), hash=crc, compact_revision=compact_rev)

    async def move_leader(self, req: rpc_pb2.MoveLeaderRequest) -> rpc_pb2.MoveLeaderResponse:
        if not self.is_leader:
            raise errors.ErrNotLeader
        target = self.membership.members.get(req.targetID)
        if target is None or target.isLearner:
            raise errors.ErrBadLeaderTransferee
        self.check_admin()
        if req.targetID != self.member_id:
            await self._transfer_leadership(req.targetID)
        return rpc_pb2.MoveLeaderResponse()  # etcd 3.5 answers MoveLeader without a header

    async def _transfer_leadership(self, target: int) -> None:
        self.raft.transfer_leader(target)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        try:
            while self.raft.lead != target:
                await asyncio.wait_for(self._leader_changed.wait(), deadline - loop.time())
        except asyncio.TimeoutError:
            raise errors.ErrTimeoutLeaderTransfer from None

    async def _transfer_leadership_on_stop(self) -> None:
        """A leader that stops gracefully hands leadership to the voting member it has been
        connected to longest, as etcd does: the others need not wait an election timeout for a
        new leader, and writes forwarded meanwhile to the leaving one are not lost."""
        if self.raft is None or self.transport is None or not self.is_leader:
            return
        peers = [m for m in self.membership.voters()
                 if m != self.member_id and self.transport.active_since(m) is not None]
        if not peers:
            return
        transferee = min(peers, key=lambda m: self.transport.active_since(m) or 0.0)
        me = f"{self.member_id:x}"
        log(logger, logging.INFO, "leadership transfer starting", **{
            "local-member-id": me, "current-leader-member-id": me, "transferee-member-id": f"{transferee:x}"})
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await self._transfer_leadership(transferee)
        except errors.ErrTimeoutLeaderTransfer:
            log(logger, logging.WARNING, "leadership transfer failed", **{
                "local-member-id": me, "error": errors.ErrTimeoutLeaderTransfer.message})
            return
        log(logger, logging.INFO, "leadership transfer finished", **{
            "local-member-id": me, "old-leader-member-id": me, "new-leader-member-id": f"{transferee:x}",
            "took": f"{(loop.time() - started) * 1000:.6f}ms"})

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
            await self.read_index.barrier()
        return rpc_pb2.MemberListResponse(header=self._member_header(), members=self.membership.sorted_members())

    async def _change_members(self, change: MemberChange) -> list[rpc_pb2.Member]:
        self.membership.check(change)
        if change.kind in (MemberChange.UPDATE, MemberChange.PUBLISH):
            resp = await self._propose(member_change=change)
        else:
            resp = await self._propose(conf_change=_CONF_CHANGE_TYPE[change.kind], member_change=change)
        return list(resp.members)

    async def member_add(self, req: rpc_pb2.MemberAddRequest) -> rpc_pb2.MemberAddResponse:
        self.check_admin()
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
        self.check_admin()
        member = self.membership.members.get(req.ID)
        change = MemberChange(kind=MemberChange.REMOVE, member=rpc_pb2.Member(ID=req.ID))
        self.membership.check(change)
        if member is not None and not member.isLearner and self.cfg["strict-reconfig-check"]:
            self._check_started_quorum(len(self.membership.voters()) - 1, excluding=req.ID)
        members = await self._change_members(change)
        return rpc_pb2.MemberRemoveResponse(header=self._member_header(), members=members)

    async def member_update(self, req: rpc_pb2.MemberUpdateRequest) -> rpc_pb2.MemberUpdateResponse:
        self.check_admin()
        urls = bootstrap.check_peer_urls(req.peerURLs)
        members = await self._change_members(MemberChange(kind=MemberChange.UPDATE,
                                                          member=rpc_pb2.Member(ID=req.ID, peerURLs=urls)))
        return rpc_pb2.MemberUpdateResponse(header=self._member_header(), members=members)

    async def member_promote(self, req: rpc_pb2.MemberPromoteRequest) -> rpc_pb2.MemberPromoteResponse:
        self.check_admin()
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

    async def _forward_to_leader(self, method: str, req, response_type, service: str = "Cluster"):
        leader = self.membership.members.get(self.raft.lead)
        if leader is None or not leader.clientURLs:
            raise errors.ErrNoLeader
        who = caller.get()  # the leader checks the same identity (tokens are known to every member)
        return await self.platform.call_member(list(leader.clientURLs), service, method, req, response_type,
                                               timeout=self.request_timeout, token=who.token if who else "")

    # ---- health --------------------------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        if not self.raft.lead:
            return False, "RAFT NO LEADER"
        active = self.alarms.get()
        if active:  # etcd names the first alarm only
            return False, "ALARM " + rpc_pb2.AlarmType.Name(active[0].alarm)
        return True, ""
