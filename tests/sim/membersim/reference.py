"""The reference: the agreed log replayed through a fresh Applier on a fresh Backend.

The members' recorded log (recorder.py) is decoded as EtcdServer.apply decodes it, with the
same rule for requests that must not apply (a fenced request ID, or an entry past the request's
``max_index``: mirrored from the server, since it decides what a history means), and applied in
one batch. Compactions are left out, so that the reference can answer a read at any revision
(a compaction changes no revision and nothing a read at the current revision sees).

What comes out, per entry: the operations it carries (the unique ``<oN>`` tokens the workload
puts in every write), the response, and the store revision before and after it.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd.proto.raftpb import raft_pb2
from pyetcd.server.apply import Applier
from pyetcd.server.lessor import Lessor
from pyetcd.storage.backend import Backend
from pyetcd.storage.mvcc import KVStore

InternalRequest = raft_internal_pb2.InternalRaftRequest
TOKEN = re.compile(rb"<o(\d+)>")


def token(op_id: int) -> bytes:
    return b"<o%d>" % op_id


@dataclass
class RefEntry:
    index: int
    term: int
    request: InternalRequest | None   # None: an empty entry (a new leader's)
    conf_change: raft_pb2.ConfChange | None
    skipped: bool                     # fenced or expired: it changes nothing
    op_ids: list[int] = field(default_factory=list)
    response: object = None           # the response message, or the EtcdError the apply gave
    rev_before: int = 0
    rev_after: int = 0

    @property
    def changed(self) -> bool:
        return self.rev_after > self.rev_before


class Reference:
    def __init__(self, path: str, log: dict[int, raft_pb2.Entry], first_index: int) -> None:
        self.backend = Backend(path)
        # (never primary: leases end only by the revokes in the log)
        lessor = Lessor(0, lambda: 0.0, checkpoint_interval=0)
        lessor.use_backend(self.backend)
        self.applier = Applier(KVStore(self.backend, leases=lessor))
        lessor.register(self.applier)
        self.applier.register("fence", lambda w, fence: raft_internal_pb2.FenceResponse())
        self.applier.register("member_change", lambda w, change: rpc_pb2.MemberListResponse())
        self.entries: list[RefEntry] = [_decode(log[i]) for i in range(first_index, max(log) + 1)]
        self._apply()
        self.revs = [e.rev_after for e in self.entries]

    def close(self) -> None:
        self.backend.close()

    def _apply(self) -> None:
        fenced: set[int] = set()
        batch, applied = [], []
        for e in self.entries:
            req = e.request
            if req is None:
                continue
            if req.ID in fenced or (req.max_index and e.index > req.max_index):
                e.skipped = True
                continue
            if req.HasField("fence"):
                fenced.add(req.fence.request_id)
            if req.HasField("compaction"):
                continue
            batch.append((e.index, e.term, req))
            applied.append(e)
        results = self.applier.apply_batch(batch)
        rev = 1
        by_index = {e.index: result for e, result in zip(applied, results)}
        for e in self.entries:
            e.rev_before = rev
            result = by_index.get(e.index)
            if result is not None:
                e.response = result[0]
                header = getattr(e.response, "header", None)
                if header is not None and header.revision:
                    rev = max(rev, header.revision)
            e.rev_after = rev

    def entry_at_revision(self, rev: int) -> int:
        """How many entries it takes to reach store revision ``rev``."""
        return bisect.bisect_right(self.revs, rev)

    def range(self, req: rpc_pb2.RangeRequest, at: int) -> rpc_pb2.RangeResponse:
        query = rpc_pb2.RangeRequest()
        query.CopyFrom(req)
        query.revision = at
        return self.applier.range(query)

    @property
    def rev(self) -> int:
        return self.revs[-1] if self.revs else 1


def _decode(entry: raft_pb2.Entry) -> RefEntry:
    cc = None
    if entry.type == raft_pb2.EntryConfChange:
        cc = raft_pb2.ConfChange.FromString(entry.data)
        data = cc.context
    elif entry.data:
        data = entry.data
    else:
        return RefEntry(entry.index, entry.term, None, None, False)
    ref = RefEntry(entry.index, entry.term, InternalRequest.FromString(data), cc, False)
    ref.op_ids = [int(m[1]) for m in TOKEN.finditer(data)]
    return ref
