"""Linearizable reads: one ReadIndex round at a time, shared by every read that arrived before it.

etcd's linearizableReadLoop. A round asks Raft (the leader, through a follower's forward) for
the commit index as of now, confirmed by a quorum, then waits until this member has applied up
to it. Each round's context is a fresh request ID (unique across members and restarts, see
idutil), and only an answer carrying the context of the round in flight resolves it: an answer
to a round of an earlier run, queued in a peer's connection across a restart, is ignored. The
request is sent again every ``RETRY_SECONDS`` until answered (the leader may have dropped it:
a leader change, a lost message), and the whole round, the wait for the local apply included,
ends by the request timeout.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from pyetcd import errors
from pyetcd.raft import ReadState

RETRY_SECONDS = 0.5  # etcd's readIndexRetryTime


class ReadIndex:
    def __init__(self, send: Callable[[bytes], None], next_id: Callable[[], int],
                 wait_applied: Callable[[int], Awaitable[None]], has_leader: Callable[[], bool],
                 timeout: float) -> None:
        self._send = send                  # RaftNode.read_index
        self._next_id = next_id
        self._wait_applied = wait_applied  # returns once the member applied up to an index
        self._has_leader = has_leader
        self._timeout = timeout
        self._next: list[asyncio.Future] = []
        self._wakeup = asyncio.Event()
        self._ctx = b""
        self._answer: asyncio.Future | None = None

    async def barrier(self) -> None:
        """Return once a read served from the local store now would be linearizable."""
        fut = asyncio.get_running_loop().create_future()
        self._next.append(fut)
        self._wakeup.set()
        await fut

    def on_read_states(self, states: list[ReadState]) -> None:
        for state in states:
            if state.request_ctx == self._ctx and self._answer is not None and not self._answer.done():
                self._answer.set_result(state.index)

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            waiters, self._next = [w for w in self._next if not w.done()], []
            if not waiters:
                continue
            try:
                async with asyncio.timeout(self._timeout):
                    await self._wait_applied(await self._round())
            except TimeoutError:
                error = errors.ErrTimeout if self._has_leader() else errors.ErrNoLeader
                for w in waiters:
                    if not w.done():
                        w.set_exception(error)
                continue
            finally:
                self._ctx, self._answer = b"", None
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    async def _round(self) -> int:
        """The read index of a new round, asking again until an answer comes."""
        self._ctx = self._next_id().to_bytes(8, "big")
        self._answer = asyncio.get_running_loop().create_future()
        while True:
            self._send(self._ctx)
            done, _ = await asyncio.wait([self._answer], timeout=RETRY_SECONDS)
            if done:
                return self._answer.result()
