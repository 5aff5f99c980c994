"""The member's replicated log, as the server sees it: propose data, get committed entries back.

This is the seam Raft fills. For a single-member cluster an entry is committed as soon as it is
durable in the WAL, so ``LocalRaftNode`` appends proposals to the WAL and hands them to the apply
step once fsynced. Group commit: every proposal that arrives while an fsync runs goes into the
next one; the fsync runs in a worker thread so the event loop keeps serving.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from pyetcd.logutil import log
from pyetcd.proto.raftpb import raft_pb2
from pyetcd.wal import WAL

logger = logging.getLogger("pyetcd.raft")

CommitHandler = Callable[[list[raft_pb2.Entry]], None]


class LocalRaftNode:
    """A one-member log: leader of its own term, committing each batch once the WAL holds it."""

    def __init__(self, wal: WAL, hardstate: raft_pb2.HardState, last_index: int,
                 on_commit: CommitHandler, *, fsync: bool = True) -> None:
        self._wal = wal
        self._on_commit = on_commit
        self._fsync = fsync
        self.term = hardstate.term
        self.vote = hardstate.vote
        self.last_index = last_index
        self.commit_index = last_index
        self._pending: list[bytes] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False

    async def start(self, member_id: int) -> None:
        """Win the election of a new term and append its empty entry, as a Raft leader does."""
        self.term += 1
        self.vote = member_id
        log(logger, logging.INFO, f"{member_id:x} became leader at term {self.term}",
            **{"raft-term": self.term})
        self._pending.append(b"")
        await self._flush()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def propose(self, data: bytes) -> None:
        self._pending.append(data)
        self._wakeup.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stopping or self._pending:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._pending:
                await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        first = self.last_index + 1
        entries = [raft_pb2.Entry(term=self.term, index=first + i, data=data) for i, data in enumerate(batch)]
        last = first + len(batch) - 1
        hardstate = raft_pb2.HardState(term=self.term, vote=self.vote, commit=last)
        await asyncio.to_thread(self._wal.save, hardstate, entries, sync=self._fsync)
        self.last_index = self.commit_index = last
        self._on_commit(entries)
