"""The cluster's alarms (etcd's v3alarm): NOSPACE and CORRUPT, per member, in bucket `alarm`.

Alarms change only by applying an AlarmRequest (ACTIVATE, DEACTIVATE) from the log, so every
member holds the same set, and a restart or a snapshot install brings it back with the backend.
While one is active the apply path refuses what it forbids, as etcd's capped and corrupt
appliers do: with NOSPACE every request that would write more (a put, a txn with a put in any
branch, a lease grant) fails with ``etcdserver: mvcc: database space exceeded``, while reads,
deletes and compactions go on; with CORRUPT every write fails with ``etcdserver: corrupt cluster``.
"""
from __future__ import annotations

import logging

from pyetcd import errors
from pyetcd.logutil import log
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.storage.backend import Backend

NONE, NOSPACE, CORRUPT = rpc_pb2.NONE, rpc_pb2.NOSPACE, rpc_pb2.CORRUPT
ACTIVATE, DEACTIVATE = rpc_pb2.AlarmRequest.ACTIVATE, rpc_pb2.AlarmRequest.DEACTIVATE

logger = logging.getLogger("pyetcd.v3alarm")

_WRITES = ("put", "delete_range", "txn", "compaction", "lease_grant", "lease_revoke")


class AlarmStore:
    def __init__(self) -> None:
        self._active: dict[tuple[int, int], rpc_pb2.AlarmMember] = {}  # (member ID, alarm) ->
        self._db = None

    def use_backend(self, backend: Backend) -> None:
        self._db = backend.db("alarm")
        self._active = {}
        with backend.begin_read() as txn:
            for key, _ in txn.cursor(db=self._db):
                am = rpc_pb2.AlarmMember.FromString(key)
                self._active[(am.memberID, am.alarm)] = am

    def get(self, alarm: int = NONE) -> list[rpc_pb2.AlarmMember]:
        """Active alarms of one type, or all for NONE, by member ID."""
        return [am for (_, kind), am in sorted(self._active.items()) if alarm in (NONE, kind)]

    def active(self, alarm: int) -> bool:
        return any(kind == alarm for _, kind in self._active)

    def register(self, applier) -> None:
        """Apply alarm requests through ``applier``, and refuse what an active alarm forbids."""
        applier.register("alarm", self._apply)
        for field in _WRITES:
            applier.guard(field, self._check)

    def _apply(self, w, req: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        resp = rpc_pb2.AlarmResponse()
        if req.alarm == NONE and req.action == ACTIVATE:
            return resp
        am = rpc_pb2.AlarmMember(memberID=req.memberID, alarm=req.alarm)
        key = (req.memberID, req.alarm)
        if req.action == ACTIVATE:
            if key not in self._active:
                w.txn.put(am.SerializeToString(), b"", db=self._db)
                self._active[key] = am
                log(logger, logging.WARNING, "alarm raised", alarm=rpc_pb2.AlarmType.Name(req.alarm),
                    **{"from": f"{req.memberID:x}"})
            resp.alarms.append(am)
        elif req.action == DEACTIVATE and key in self._active:
            w.txn.delete(am.SerializeToString(), db=self._db)
            resp.alarms.append(self._active.pop(key))
            log(logger, logging.WARNING, "alarm disarmed", alarm=rpc_pb2.AlarmType.Name(req.alarm),
                **{"from": f"{req.memberID:x}"})
        return resp

    def _check(self, field: str, req) -> None:
        if not self._active:
            return
        if self.active(CORRUPT):
            raise errors.ErrCorrupt
        if self.active(NOSPACE) and grows(field, req):
            raise errors.ErrNoSpace


def grows(field: str, req) -> bool:
    """Whether the request can add to the database (what etcd's quota counts a cost for)."""
    if field in ("put", "lease_grant"):
        return True
    return field == "txn" and txn_puts(req)


def txn_puts(req: rpc_pb2.TxnRequest) -> bool:
    for op in (*req.success, *req.failure):
        kind = op.WhichOneof("request")
        if kind == "request_put" or (kind == "request_txn" and txn_puts(op.request_txn)):
            return True
    return False
