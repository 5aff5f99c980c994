"""The Cluster and Maintenance APIs (members, status, alarms, defrag, hashes, leadership), one
implementation for the sync and asyncio clients, as ``auth.AuthAPI`` is.

Each method builds its request and returns ``self.call(...)``: the response on ``Client``, an
awaitable of it on ``AsyncClient``. Maintenance calls are per member, as in etcd: ``endpoint``
picks the member (default: the client's current one) and the call is not moved to another.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, BinaryIO, Callable, Iterable, Optional

from pyetcd.errors import DATA_LOSS, EtcdError
from pyetcd.proto.etcdserverpb import rpc_pb2

ALARM_TYPES = {"NONE": rpc_pb2.NONE, "NOSPACE": rpc_pb2.NOSPACE, "CORRUPT": rpc_pb2.CORRUPT}


class ClusterMaintenanceAPI:
    """Mixed into Client and AsyncClient, which provide ``call`` and ``endpoints``."""

    call: Callable[..., Any]
    endpoints: list[str]
    _current: int

    def _member_endpoint(self, endpoint: Optional[str]) -> str:
        return endpoint if endpoint is not None else self.endpoints[self._current]

    # -- Cluster ------------------------------------------------------------------------------
    def member_list(self, linearizable: bool = False, timeout: Optional[float] = None) -> Any:
        """MemberListResponse: every member's ID, name, peer and client URLs, isLearner."""
        return self.call("cluster", "MemberList", rpc_pb2.MemberListRequest(linearizable=linearizable), timeout)

    def member_add(self, peer_urls: Iterable[str], is_learner: bool = False,
                   timeout: Optional[float] = None) -> Any:
        """MemberAddResponse: the new ``member`` and the ``members`` it will join."""
        req = rpc_pb2.MemberAddRequest(peerURLs=list(peer_urls), isLearner=is_learner)
        return self.call("cluster", "MemberAdd", req, timeout)

    def member_remove(self, member_id: int, timeout: Optional[float] = None) -> Any:
        return self.call("cluster", "MemberRemove", rpc_pb2.MemberRemoveRequest(ID=member_id), timeout)

    def member_update(self, member_id: int, peer_urls: Iterable[str], timeout: Optional[float] = None) -> Any:
        req = rpc_pb2.MemberUpdateRequest(ID=member_id, peerURLs=list(peer_urls))
        return self.call("cluster", "MemberUpdate", req, timeout)

    def member_promote(self, member_id: int, timeout: Optional[float] = None) -> Any:
        """Make a learner a voting member (etcd refuses one not yet in sync with the leader)."""
        return self.call("cluster", "MemberPromote", rpc_pb2.MemberPromoteRequest(ID=member_id), timeout)

    # -- Maintenance --------------------------------------------------------------------------
    def status(self, endpoint: Optional[str] = None, timeout: Optional[float] = None) -> Any:
        """StatusResponse of one member: version, dbSize, dbSizeInUse, leader, raft index/term, errors."""
        return self.call("maintenance", "Status", rpc_pb2.StatusRequest(), timeout,
                         endpoint=self._member_endpoint(endpoint))

    def alarm_list(self, timeout: Optional[float] = None) -> Any:
        """AlarmResponse with every active alarm of the cluster (``alarms``: memberID, alarm)."""
        req = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET, memberID=0, alarm=rpc_pb2.NONE)
        return self.call("maintenance", "Alarm", req, timeout)

    def alarm_disarm(self, member_id: int = 0, alarm: str = "NONE", timeout: Optional[float] = None) -> Any:
        """Deactivate ``alarm`` ("NOSPACE", "CORRUPT") of ``member_id``; the AlarmResponse lists what
        was deactivated. ``etcdctl alarm disarm`` does this for each alarm ``alarm_list`` shows."""
        req = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=member_id,
                                   alarm=ALARM_TYPES[alarm.upper()])
        return self.call("maintenance", "Alarm", req, timeout)

    def defragment(self, endpoint: Optional[str] = None, timeout: Optional[float] = None) -> Any:
        """Give one member's free database space back to the file system."""
        return self.call("maintenance", "Defragment", rpc_pb2.DefragmentRequest(), timeout,
                         endpoint=self._member_endpoint(endpoint))

    def hash_kv(self, revision: int = 0, endpoint: Optional[str] = None, timeout: Optional[float] = None) -> Any:
        """HashKVResponse of one member: the hash of its keys up to ``revision`` (0: the latest),
        ``compact_revision``; equal on members with the same history."""
        return self.call("maintenance", "HashKV", rpc_pb2.HashKVRequest(revision=revision), timeout,
                         endpoint=self._member_endpoint(endpoint))

    def move_leader(self, target_id: int, endpoint: Optional[str] = None, timeout: Optional[float] = None) -> Any:
        """Hand leadership to ``target_id``. Only the leader can: ``endpoint`` must be the leader's
        (``status().leader`` names it), else etcd answers ``etcdserver: not leader``."""
        return self.call("maintenance", "MoveLeader", rpc_pb2.MoveLeaderRequest(targetID=target_id), timeout,
                         endpoint=self._member_endpoint(endpoint))


class SnapshotFile:
    """A Maintenance.Snapshot stream saved as etcd's tools save it: the database followed by its
    SHA-256, written to ``path + ".part"`` (created 0600), checked, fsynced, then renamed over
    ``path``; on an error the .part file is removed.

        with SnapshotFile(path) as f:
            for blob in stream: f.add(blob)
            f.close()                    # checks the checksum, fsyncs
            f.commit()                   # renames into place
    """

    def __init__(self, path: str) -> None:
        self.path, self.part = path, path + ".part"
        self.size = 0
        self._file: BinaryIO = os.fdopen(os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        self._digest = hashlib.sha256()
        self._last = b""
        self._committed = False

    def add(self, blob: bytes) -> None:
        self._digest.update(self._last)  # the checksum is the stream's last blob: hash all before it
        self._file.write(blob)
        self.size += len(blob)
        self._last = blob

    def close(self) -> None:
        if self._last != self._digest.digest():
            raise EtcdError(DATA_LOSS, "snapshot: sha256 checksum mismatch")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def commit(self) -> None:
        os.rename(self.part, self.path)
        self._committed = True

    def __enter__(self) -> "SnapshotFile":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._committed:
            self._file.close()
            os.unlink(self.part)
