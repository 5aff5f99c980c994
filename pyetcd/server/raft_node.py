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
    def apply(self, entries: list[raft_pb2.Entry]) -> None: ...
    def on_read_states(self, states: list[ReadState]) -> None: ...
    def snapshot_file(self) -> str: ...            # a consistent copy of the backend, for a follower
    def after_advance(self) -> None: ...


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
        self._proposals: list[bytes] = []
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    # ---- inputs (never block) ------------------------------------------------------------------

    def wake(self) -> None:
        self._wakeup.set()

    def propose(self, data: bytes) -> None:
        """Queue a proposal; every proposal of this loop iteration goes to Raft as one batch (one
        message, one append). A batch Raft drops (no leader) is lost like any lost proposal:
        its proposers time out."""
        self._proposals.append(data)
        if len(self._proposals) == 1:
            asyncio.get_running_loop().call_soon(self._flush_proposals)

    def _flush_proposals(self) -> None:
        batch, self._proposals = self._proposals, []
        try:
            self.node.propose_batch(batch)
        except ProposalDropped:
            pass
        self._wakeup.set()

    def propose_conf_change(self, cc: raft_pb2.ConfChange) -> None:
        self.node.propose_conf_change(cc)
        self._wakeup.set()

    def read_index(self, ctx: bytes) -> None:
        self.node.read_index(ctx)
        self._wakeup.set()

    def step(self, message: raft_pb2.Message) -> None:
        self.node.step(message)
        self._wakeup.set()

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
            meta = rd.snapshot.metadata
            await asyncio.to_thread(self.wal.save_snapshot, meta.index, meta.term)
            self.storage.apply_snapshot(rd.snapshot)
        if rd.entries or rd.hard_state is not None:
            await asyncio.to_thread(self.wal.save, rd.hard_state, rd.entries, sync=self.fsync and rd.must_sync)
            if rd.hard_state is not None:
                self.storage.set_hard_state(rd.hard_state)
            self.storage.append(rd.entries)
        self._send(rd.messages)
        if rd.committed_entries:
            self.handler.apply(rd.committed_entries)
        if rd.read_states:
            self.handler.on_read_states(rd.read_states)
        self.node.advance(rd)
        self.handler.after_advance()

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
        path = await asyncio.to_thread(self.handler.snapshot_file)
        try:
            ok = await self.transport.send_snapshot(m.to, m.SerializeToString(), path)
        except Exception:  # noqa: BLE001 - any failure is reported to Raft as a failed snapshot
            logger.exception("sending snapshot failed")
            ok = False
        finally:
            os.unlink(path)
        log(logger, logging.INFO, "sent database snapshot", to=f"{m.to:x}", success=ok,
            **{"snapshot-index": m.snapshot.metadata.index})
        self.node.report_snapshot(m.to, ok)
        self._wakeup.set()

    def _crash_on_failure(self, task: asyncio.Task) -> None:
        """A member whose Raft loop failed must not linger half-alive (etcd panics)."""
        if not task.cancelled() and task.exception() is not None:
            self.fatal("raft loop failed", task.exception())
