"""The member's v2 keys API (etcd's v2 store behind --enable-v2): writes are proposed to Raft as
an InternalRaftRequest's ``v2`` (etcd's etcdserverpb.Request) and applied in the entry batch's
LMDB transaction; the whole tree is kept as one record of bucket ``v2`` (see DESIGN-NOTES).
While keys with a TTL exist, the leader proposes a SYNC every SYNC_INTERVAL carrying its clock,
and every member expires keys when it applies that SYNC, so all of them expire the same keys at
the same index.
"""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Callable

from pyetcd import errors
from pyetcd.proto.etcdserverpb import raft_internal_pb2
from pyetcd.server.membership import MemberChange
from pyetcd.storage.backend import Backend
from pyetcd.v2store.errors import V2Error
from pyetcd.v2store.store import Event, Store
from pyetcd.v2store.watch import WatcherHub

if TYPE_CHECKING:
    from pyetcd.server.etcdserver import EtcdServer

Request = raft_internal_pb2.Request
SYNC_INTERVAL = 0.5  # etcd's v2 SYNC period
_RECORD = b"store"
# What etcd writes to its own /0 keys for a member change (pyetcd keeps the member list in
# bucket `members`, but counts those writes so that v2 indexes are etcd's).
_MEMBER_WRITES = {MemberChange.ADD: ("create",), MemberChange.ADD_LEARNER: ("create",),
                  MemberChange.REMOVE: ("delete", "create"), MemberChange.UPDATE: ("update",),
                  MemberChange.PROMOTE: ("update",), MemberChange.PUBLISH: ("set",)}


class V2Store:
    """The member's v2 store, its watchers, and the apply handler that writes both."""

    def __init__(self) -> None:
        self.store = Store()
        self.hub = WatcherHub()
        self._db = None
        self._results: dict[int, Event | V2Error | None] = {}  # this member's requests in flight

    def use_backend(self, backend: Backend, initial_members: int) -> None:
        self._db = backend.db("v2")
        with backend.begin_read() as txn:
            blob = txn.get(_RECORD, db=self._db)
        self.hub.reset()
        if blob is None:
            self.store = Store()
            for _ in range(initial_members):  # (a new cluster's members, added at bootstrap)
                self._bumped("create")
        else:
            self.store = Store.from_blob(blob)

    def register(self, applier, check_member_change: Callable[[MemberChange], None]) -> None:
        applier.register("v2", self._apply)

        def count_member_writes(_field: str, change: MemberChange) -> None:
            check_member_change(change)  # (a change that will fail writes nothing)
            for action in _MEMBER_WRITES[change.kind]:
                self._bumped(action)
            if change.kind == MemberChange.PUBLISH and not self.store.version_set:
                self.store.version_set = True  # the cluster version, decided after the first publish
                self._bumped("set")
            self._save(applier.write.txn)
        applier.guard("member_change", count_member_writes)

    def _bumped(self, action: str) -> None:
        self.store.bump(action)
        self.hub.record(self.store.index, None)

    def _save(self, txn) -> None:
        txn.put(_RECORD, self.store.to_blob(), db=self._db)

    def _apply(self, w, req: Request) -> raft_internal_pb2.V2Response:
        try:
            events = self._run(req)
        except V2Error as err:
            if req.ID in self._results:
                self._results[req.ID] = err
            return raft_internal_pb2.V2Response()
        for event in events:
            self.hub.record(event.index, event)
        self._save(w.txn)
        if req.ID in self._results:
            self._results[req.ID] = events[0] if events else None
        return raft_internal_pb2.V2Response()

    def _run(self, req: Request) -> list[Event]:
        s = self.store
        if req.Method == "SYNC":
            return s.expire(req.Time)
        if req.Method == "POST":
            return [s.create(req.Path, req.Dir, req.Val, req.Expiration, unique=True)]
        if req.Method == "DELETE":
            if req.PrevIndex or req.PrevValue:
                return [s.compare_and_delete(req.Path, req.PrevValue, req.PrevIndex)]
            return [s.delete(req.Path, req.Dir, req.Recursive)]
        if req.Method != "PUT":
            raise ValueError(f"v2 method {req.Method!r}")
        compare = bool(req.PrevIndex or req.PrevValue)
        if req.HasField("PrevExist") and not req.PrevExist:
            return [s.create(req.Path, req.Dir, req.Val, req.Expiration)]
        if compare:
            return [s.compare_and_swap(req.Path, req.PrevValue, req.PrevIndex, req.Val, req.Expiration,
                                       refresh=req.Refresh)]
        if req.HasField("PrevExist"):
            return [s.update(req.Path, None if req.Dir else req.Val, req.Expiration, refresh=req.Refresh)]
        return [s.set(req.Path, req.Dir, req.Val, req.Expiration, refresh=req.Refresh)]

    # ---- the member's side -----------------------------------------------------------------

    async def propose(self, server: EtcdServer, req: Request) -> Event:
        req.ID = server._ids.next()
        self._results[req.ID] = None
        try:
            await server._propose(v2=req)
            result = self._results[req.ID]
        finally:
            self._results.pop(req.ID, None)
        if isinstance(result, V2Error):
            raise result
        return result

    async def run_sync(self, server: EtcdServer) -> None:
        """The leader's loop: a SYNC every SYNC_INTERVAL while keys with a TTL exist."""
        while True:
            await asyncio.sleep(SYNC_INTERVAL)
            if server.is_leader and self.store.has_ttls():
                try:
                    await server._propose(v2=Request(Method="SYNC", Time=time.time_ns()))
                except errors.EtcdError:
                    pass  # (the next tick tries again)
