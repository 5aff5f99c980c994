"""Maintenance.Snapshot: the member's database streamed to a client, as etcd 3.5 sends it.

The stream is the database file in 32 KiB blobs, each saying how many bytes are still to come
(``remaining_bytes``), then one last blob: the SHA-256 of everything before it, which
``etcdutl snapshot restore`` checks. The file is a consistent copy made for this call (the same
copy a follower's snapshot is made from), removed when the stream ends, however it ends.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import AsyncIterator

from pyetcd.etcdctl.gofmt import duration_string, humanize_bytes
from pyetcd.logutil import log
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.server.etcdserver import EtcdServer

logger = logging.getLogger("pyetcd.v3rpc")

CHUNK = 32 * 1024


async def snapshot_stream(server: EtcdServer) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
    server.check_maintenance_admin()
    path, _ = await server.snapshot_copy()
    try:
        with open(path, "rb") as f:
            total = os.fstat(f.fileno()).st_size
            log(logger, logging.INFO, "sending database snapshot to client",
                **{"total-bytes": total, "size": humanize_bytes(total)})
            start = time.monotonic()
            digest = hashlib.sha256()
            sent = 0
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                sent += len(chunk)
                yield rpc_pb2.SnapshotResponse(remaining_bytes=total - sent, blob=chunk)
        yield rpc_pb2.SnapshotResponse(remaining_bytes=0, blob=digest.digest())
        log(logger, logging.INFO, "successfully sent database snapshot to client",
            **{"total-bytes": total, "size": humanize_bytes(total), "took": duration_string(time.monotonic() - start)})
    finally:
        os.remove(path)
