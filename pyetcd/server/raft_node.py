"""etcd's raftNode: drives the sans-I/O Raft with time, the WAL and the peer transport.

The loop takes each Ready in turn: the hard state, entries and snapshot go to the WAL (fsynced
when Raft says so) and to the in-memory Raft storage *before* any message of the same Ready is
sent; then the messages go out, the committed entries are applied (the server's ``apply``), read
states are handed over, and Raft is told ``advance``. Proposals, ReadIndex requests and peer
messages arriving while an fsync runs in its worker thread pile up in Raft and leave together
in the next Ready: that is the group commit.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Callable, NoReturn, Protocol

from pyetcd.logutil import log
from pyetcd.proto.raftpb import raft_pb2
from pyetcd.raft import MemoryStorage, ProposalDropped, RawNode, ReadState, SoftState
from pyetcd.wal import WAL

logger = logging.getLogger("pyetcd.raft")

M = raft_pb2


class ReadyHandler(Protocol):
    def on_soft_state(self, soft: SoftState) -> None: ...
    async def install_snapshot(self, snapshot: raft_pb2.Snapshot) -> None: ...  # WAL marker + database swap
    def apply(self, entries: list[raft_pb2.Entry]) -> None: ...
    def on_read_states(self, states: list[ReadState]) -> None: ...
    def on_proposals_dropped(self, request_ids: list[int]) -> None: ...
    async def snapshot_copy(self) -> tuple[str, raft_pb2.SnapshotMetadata]: ...  # a copy for a follower
    async def after_advance(self) -> None: ...


# Proposals forwarded by a follower travel as one MsgProp: keep it far below the peer frame limit.
MAX_PROPOSAL_BATCH_BYTES = 8 << 20


class RaftNode:
    def __init__(self, node: RawNode, storage: MemoryStorage, wal: WAL, transport, handler: ReadyHandler, *,
                 tick_seconds: float, fatal: Callable[[str, BaseException | None], NoReturn],
                 fsync: bool = True) -> None:
        self.node = node
        self.storage = storage
        self.wal = wal
        self.transport = transport
        self.handler = handler
        self.tick_seconds = tick_seconds
        self.fsync = fsync
        self.fatal = fatal
        self._wakeup = asyncio.Event()
        self._proposals: list[tuple[int, bytes]] = []
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    # ---- inputs (never block) ------------------------------------------------------------------

    def wake(self) -> None:
        self._wakeup.set()

    def propose(self, request_id: int, data: bytes) -> None:
        """Queue a proposal; the proposals of one loop iteration go to Raft in batches (one
        message, one append each). Those Raft drops (no leader known, a leader transfer running)
        are reported to ``on_proposals_dropped`` at once."""
        self._proposals.append((request_id, data))
        if len(self._proposals) == 1:
            asyncio.get_running_loop().call_soon(self._flush_proposals)

    def _flush_proposals(self) -> None:
        queued, self._proposals = self._proposals, []
        start, size = 0, 0
        for i, (_, data) in enumerate(queued):
            if size and size + len(data) > MAX_PROPOSAL_BATCH_BYTES:
                self._propose_batch(queued[start:i])
                start, size = i, 0
            size += len(data)
        self._propose_batch(queued[start:])
        self._wakeup.set()

    def _propose_batch(self, batch: list[tuple[int, bytes]]) -> None:
        try:
            self.node.propose_batch([data for _, data in batch])
        except ProposalDropped:
            self.handler.on_proposals_dropped([request_id for request_id, _ in batch])

    def propose_conf_change(self, cc: raft_pb2.ConfChange) -> None:
        self.node.propose_conf_change(cc)
        self._wakeup.set()

    def read_index(self, ctx: bytes) -> None:
        self.node.read_index(ctx)
        self._wakeup.set()

    def step(self, message: raft_pb2.Message) -> None:
        self.node.step(message)
        self._wakeup.set()

    def step_snapshot(self, message: raft_pb2.Message) -> bool:
        accepted = self.node.step_snapshot(message)
        self._wakeup.set()
        return accepted

    def transfer_leader(self, target: int) -> None:
        self.node.transfer_leader(target)
        self._wakeup.set()

    def report_unreachable(self, peer_id: int) -> None:
        self.node.report_unreachable(peer_id)
        self._wakeup.set()

    # ---- state ---------------------------------------------------------------------------------

    @property
    def raft(self):
        return self.node.raft

    @property
    def term(self) -> int:
        return self.node.raft.term

    @property
    def lead(self) -> int:
        return self.node.raft.lead

    @property
    def commit_index(self) -> int:
        return self.node.raft.log.committed

    # ---- the loop ------------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name="raft-ready"),
                       loop.create_task(self._tick(), name="raft-tick")]
        for task in self._tasks:
            task.add_done_callback(self._crash_on_failure)
        self._wakeup.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            self.node.tick()
            self._wakeup.set()

    async def _run(self) -> None:
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self.node.has_ready() and not self._stopping:
                await self._handle(self.node.ready())

    async def _handle(self, rd) -> None:
        if rd.soft_state is not None:
            self.handler.on_soft_state(rd.soft_state)
        if rd.snapshot is not None:
            await self.handler.install_snapshot(rd.snapshot)
            self.storage.apply_snapshot(rd.snapshot)
        # A conf change is applied (and acknowledged) only once its commit is durable: the one
        # voter that could tell a restarted member it was committed may be the one it removed.
        commits_conf_change = any(e.type == M.EntryConfChange for e in rd.committed_entries)
        hard_state = rd.hard_state or (self.storage.hard_state if commits_conf_change else None)
        if rd.entries or hard_state is not None:
            await asyncio.to_thread(self.wal.save, hard_state, rd.entries,
                                    sync=self.fsync and (rd.must_sync or commits_conf_change))
            if rd.hard_state is not None:
                self.storage.set_hard_state(rd.hard_state)
            self.storage.append(rd.entries)
        self._send(rd.messages)
        if rd.committed_entries:
            self.handler.apply(rd.committed_entries)
        if rd.read_states:
            self.handler.on_read_states(rd.read_states)
        self.node.advance(rd)
        await self.handler.after_advance()

    def _send(self, messages: list[raft_pb2.Message]) -> None:
        if self.transport is None:
            return
        batch = []
        for m in messages:
            if m.type == M.MsgSnap:
                self._tasks.append(asyncio.get_running_loop().create_task(self._send_snapshot(m)))
            else:
                batch.append((m.to, m.SerializeToString()))
        if batch:
            self.transport.send_many(batch)

    async def _send_snapshot(self, m: raft_pb2.Message) -> None:
        """Stream a copy of the database in place of Raft's snapshot; the message describes the
        copy (its own index, term and members), which may be newer than the snapshot Raft chose."""
        ok, path = False, None
        try:
            path, meta = await self.handler.snapshot_copy()
            m.snapshot.metadata.CopyFrom(meta)
            ok = await self.transport.send_snapshot(m.to, m.SerializeToString(), path)
        except Exception:  # noqa: BLE001 - any failure is reported to Raft as a failed snapshot
            logger.exception("sending snapshot failed")
        finally:
            if path is not None:
                os.unlink(path)
        log(logger, logging.INFO, "sent database snapshot", to=f"{m.to:x}", success=ok,
            **{"snapshot-index": m.snapshot.metadata.index})
        self.node.report_snapshot(m.to, ok)
        self._wakeup.set()

    def _crash_on_failure(self, task: asyncio.Task) -> None:
        """A member whose Raft loop failed must not linger half-alive (etcd panics)."""
        if not task.cancelled() and task.exception() is not None:
            self.fatal("raft loop failed", task.exception())
