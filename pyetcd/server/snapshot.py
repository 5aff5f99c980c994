"""Snapshots from the leader: a copy of its database replaces a follower's backend.

A Raft snapshot here *is* the database (DESIGN-NOTES.md). In the order things happen:

- The leader copies its backend (compacting) and describes the copy from the copy itself: its
  applied index and term, and its member list as a ConfState. The snapshot message carries
  exactly that (etcd merges the database into the message the same way), so the follower's Raft
  restores to what the database holds, not to an older snapshot's index.
- The follower checks that the file it received is the one the message describes, fsyncs it and
  lets Raft judge the message first: a snapshot from a deposed leader, or older than what the
  member has, is dropped and the backend is never touched.
- A snapshot Raft accepted is stashed as ``<term>-<index>.snap.db`` beside the backend and
  installed when the Ready carrying it is handled: a WAL marker that discards the log, then the
  swap (the old checkpoint discarded, the stash renamed over the data file, the directory
  fsynced), then a checkpoint of the new database.
- A restart that finds the WAL's last marker ahead of the backend finishes the swap from the
  stash (``finish_install``).

Everything lives under the member's ``snap`` directory, the backend's parent: one file system,
so every rename is atomic (a received copy spooled to /tmp would fail to move with EXDEV).
"""
from __future__ import annotations

import os
import re

from pyetcd.fileutil import FileSystem
from pyetcd.proto.raftpb import raft_pb2
from pyetcd.storage import checkpoint
from pyetcd.storage.backend import Backend, BackendCopy
from pyetcd.storage.compact_copy import CompactCopy
from pyetcd.server.membership import Membership

_STASH_RE = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap\.db$")
COPY_PREFIX = "send-"


class SnapshotRefused(Exception):
    """A received database is not what its snapshot message says."""


def describe(path: str) -> raft_pb2.SnapshotMetadata:
    """What a database file holds, as Raft snapshot metadata: applied index and term, members."""
    with BackendCopy(path) as copy:
        with copy.begin_read() as txn:
            index, term = copy.consistent_index(txn)
        members = Membership(copy)
    return raft_pb2.SnapshotMetadata(index=index, term=term, conf_state=raft_pb2.ConfState(
        voters=members.voters(), learners=members.learners()))


def make_copy(backend: Backend, snap_dir: str, name: str) -> tuple[str, raft_pb2.SnapshotMetadata]:
    """A compact, consistent copy of the backend's committed state (blocking), and what it holds."""
    path = CompactCopy(backend, os.path.join(snap_dir, f"{COPY_PREFIX}{name}")).finish()
    return path, describe(path)


def check_received(path: str, message: raft_pb2.Message) -> None:
    held = describe(path)
    meta = message.snapshot.metadata
    if (held.index, held.term) != (meta.index, meta.term):
        raise SnapshotRefused(f"the database holds index {held.index} term {held.term}, the message says "
                              f"index {meta.index} term {meta.term}")


def stash_path(snap_dir: str, index: int, term: int) -> str:
    return os.path.join(snap_dir, f"{term:016x}-{index:016x}.snap.db")


def swap_in(fs: FileSystem, stash: str, backend_dir: str) -> None:
    """Move a stashed database over the (closed) backend's data file, durably: afterwards the
    stash is gone and the data file is the one the checkpoint (discarded first) cannot describe."""
    checkpoint.discard(fs, backend_dir)
    fs.rename(stash, os.path.join(backend_dir, checkpoint.DATA_FILE))
    if fs.exists(stash):  # it already was the data file (a power loss undid only its removal):
        fs.unlink(stash)  # rename() of a file onto itself changes nothing
    fs.fsync_dir(backend_dir)
    fs.fsync_dir(os.path.dirname(stash))  # the stash's removal, or it comes back


def finish_install(fs: FileSystem, snap_dir: str, backend_dir: str, marker_index: int, marker_term: int) -> bool:
    """At start, before the backend opens: if the stash of the WAL's last snapshot marker is
    still there, its install was interrupted: swap it in now. Leftovers (copies being sent,
    spooled or stashed snapshots Raft never took) are deleted. True if a stash was swapped in."""
    wanted = os.path.basename(stash_path(snap_dir, marker_index, marker_term))
    swapped = False
    for name in sorted(fs.listdir(snap_dir)):
        path = os.path.join(snap_dir, name)
        if name == wanted:
            swap_in(fs, path, backend_dir)
            swapped = True
        elif _STASH_RE.match(name) or name.startswith(COPY_PREFIX) or name.endswith(".tmp"):
            if fs.isdir(path):
                fs.rmtree(path)
            else:
                fs.unlink(path)
    return swapped


def db_sizes(backend: Backend) -> dict[str, object]:
    """The database's size fields of etcd's defrag log lines."""
    from pyetcd.etcdctl.gofmt import humanize_bytes

    size, in_use = backend.size(), backend.size_in_use()
    return {"current-db-size-bytes": size, "current-db-size": humanize_bytes(size),
            "current-db-size-in-use-bytes": in_use, "current-db-size-in-use": humanize_bytes(in_use)}


def defrag_result(before: dict[str, object], after: dict[str, object]) -> dict[str, object]:
    """etcd's "finished defragmenting directory" fields: the sizes after, and how they changed."""
    return {"current-db-size-bytes-diff": after["current-db-size-bytes"] - before["current-db-size-bytes"],
            "current-db-size-bytes": after["current-db-size-bytes"], "current-db-size": after["current-db-size"],
            "current-db-size-in-use-bytes-diff":
                after["current-db-size-in-use-bytes"] - before["current-db-size-in-use-bytes"],
            "current-db-size-in-use-bytes": after["current-db-size-in-use-bytes"],
            "current-db-size-in-use": after["current-db-size-in-use"]}
