"""Maintenance.Defragment, online (beyond etcd, whose defrag stops the member: etcd#9222).

A compact copy of the backend is made and caught up in worker threads while the member goes on
serving (storage/compact_copy.py): passes copy what was written during the previous one, until
few keys are left (FINAL_CHANGES) or MAX_PASSES ran. Then, with no await until the copy is the
backend (applies, reads and writes arriving meanwhile wait, then run on the new file), the last
changes are copied and the copy swapped in like a snapshot install (EtcdServer._swap_backend).
That pause is proportional to what was written during the last pass, not to the database.

Worker-thread steps hold EtcdServer._copy_lock, which a snapshot install takes before it
closes the backend; an install (the leader sent a snapshot) meanwhile abandons the defrag:
the new backend is a compact copy itself. A crash at any step leaves the copy under the snap
directory, whose leftovers the next start deletes (snapshot.finish_install).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import TYPE_CHECKING, Callable, TypeVar

from pyetcd.etcdctl.gofmt import duration_string
from pyetcd.fileutil import fsync_file
from pyetcd.logutil import log
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.server import snapshot
from pyetcd.storage import checkpoint
from pyetcd.storage.backend import Backend
from pyetcd.storage.compact_copy import Changes, CompactCopy

if TYPE_CHECKING:
    from pyetcd.server.etcdserver import EtcdServer

logger = logging.getLogger("pyetcd.server")
T = TypeVar("T")

FINAL_CHANGES = 1000  # keys written during a pass small enough to copy in the pause
MAX_PASSES = 8


class DefragMethods:
    """Mixed into EtcdServer: Maintenance.Defragment."""

    async def defragment(self: EtcdServer, req: rpc_pb2.DefragmentRequest) -> rpc_pb2.DefragmentResponse:
        self.check_maintenance_admin()
        async with self._defrag_lock:  # one at a time, as etcd
            await self._defragment()
        return rpc_pb2.DefragmentResponse()  # etcd 3.5.1 answers without a header

    async def _defragment(self: EtcdServer) -> None:
        backend = self.backend
        path = os.path.join(self.cfg.backend_path, checkpoint.DATA_FILE)
        before = snapshot.db_sizes(backend)
        log(logger, logging.INFO, "defragmenting", path=path, **before)
        started = time.monotonic()
        name = uuid.UUID(int=self.platform.rng.getrandbits(128)).hex
        directory = os.path.join(self.cfg.snap_dir, f"{snapshot.COPY_PREFIX}defrag-{name}")
        backend.record_changes()
        copy: CompactCopy | None = None
        try:
            copy = await self._copy_step(backend, CompactCopy, backend, directory)
            for _ in range(MAX_PASSES):
                if self.backend is not backend:
                    return
                changes = backend.take_changes()
                if len(changes) <= FINAL_CHANGES:
                    copy.catch_up(backend, changes)
                    break
                await self._copy_step(backend, _pass, copy, backend, changes)
            if self.backend is not backend:
                return
            # (a checkpoint's fsync of the old file, in a worker, so that the pause's is short)
            await asyncio.to_thread(backend.begin_checkpoint())
            if self.backend is not backend:
                return
            # No await from here until the copy is the backend.
            copy.catch_up(backend, backend.take_changes(stop=True))
            stash, copy = copy.finish(), None
            fsync_file(self.fs, stash)
            # The old file's blocks are freed by the unlink of a second name afterwards, not
            # by the rename over it, which would take their time inside the pause.
            old = stash.removesuffix(".db") + ".old"
            self.fs.link(backend.data_file, old)
            self._swap_backend(stash, defragmented=True)
            await asyncio.to_thread(self.fs.unlink, old)
        finally:
            if copy is not None:
                copy.discard()
            if self.backend is backend:
                backend.take_changes(stop=True)
        log(logger, logging.INFO, "finished defragmenting directory", path=path,
            **snapshot.defrag_result(before, snapshot.db_sizes(self.backend)),
            took=duration_string(time.monotonic() - started))

    async def _copy_step(self: EtcdServer, backend: Backend, step: Callable[..., T], *args: object) -> T | None:
        """``step(*args)`` in a worker thread, unless a snapshot install replaced ``backend``
        (then None: the caller sees it and abandons the defrag)."""
        async with self._copy_lock:
            if self.backend is not backend:
                log(logger, logging.INFO, "abandoned defragmenting: a snapshot replaced the database")
                return None
            return await asyncio.to_thread(step, *args)


def _pass(copy: CompactCopy, backend: Backend, changes: Changes) -> CompactCopy:
    copy.catch_up(backend, changes)
    copy.sync()
    return copy
