"""The physical half of compaction: dropping obsolete history in batches on the event loop.

Applying a CompactionRequest only schedules the compaction (storage.mvcc). The Compactor
then runs ``KVStore.compact_batch(limit)`` until the store says it is finished, yielding to
the loop between batches (etcd's ``--experimental-compaction-batch-limit``), so a compaction
of millions of revisions never stops the member for long. Progress lives in the store, so the
Compactor keeps no state of its own beyond who is waiting: it asks for the store before every
batch (the member replaces its backend when it installs a snapshot; the new database carries
its own progress) and resumes whatever is unfinished when started.

No threads, clocks or timers: it runs as well on a simulated loop.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from pyetcd import errors
from pyetcd.storage.mvcc import KVStore

DEFAULT_BATCH_LIMIT = 1000  # etcd's --experimental-compaction-batch-limit


class Compactor:
    """Owns the task running scheduled compactions. ``start()``, ``notify()`` after a
    compaction is scheduled or the store replaced, ``await wait_physical(rev)``, ``await stop()``."""

    def __init__(self, get_store: Callable[[], KVStore], batch_limit: int = DEFAULT_BATCH_LIMIT,
                 on_failure: Callable[[BaseException], None] | None = None) -> None:
        """``on_failure(exc)``: the task died of an error (an LMDB one): the member cannot go on."""
        if batch_limit < 1:
            raise ValueError("batch_limit must be at least 1")
        self._get_store = get_store
        self._on_failure = on_failure
        self._limit = batch_limit
        self._wake = asyncio.Event()
        self._waiters: list[asyncio.Future] = []
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the task (in the running loop); it first resumes an unfinished compaction."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="compaction")
        self._wake.set()

    def notify(self) -> None:
        """There may be work: a compaction was scheduled, or the store was replaced."""
        self._wake.set()

    async def wait_physical(self, rev: int) -> None:
        """Return once the current store's obsolete history up to ``rev`` is physically gone
        (CompactionRequest.physical). The compaction must be scheduled (and notified);
        raises ErrStopped if the Compactor stops first."""
        while self._get_store().finished_compact_rev < rev:
            if self._task is None or self._task.done():
                raise errors.ErrStopped
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    async def stop(self) -> None:
        """Cancel the task between two batches (each batch is one transaction: nothing is left
        half done) and fail the waiters with ErrStopped. Raises what the task failed with, if
        it did (an LMDB error)."""
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while not self._get_store().compact_batch(self._limit):
                    await asyncio.sleep(0)  # let requests, Raft and the rest run in between
                self._release(None)
        except Exception as e:
            if self._on_failure is not None:
                self._on_failure(e)
            raise
        finally:
            self._release(errors.ErrStopped)

    def _release(self, error: type[errors.EtcdError] | None) -> None:
        """Wake every waiter: to check again (None), or to fail with ``error``."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
