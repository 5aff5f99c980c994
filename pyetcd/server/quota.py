"""The backend quota (etcd's quota): a request that would take the database past
``--quota-backend-bytes`` is refused before it is proposed, and the member raises NOSPACE.

A request's cost is what it may add: key and value plus a fixed overhead per put (a txn costs
its costlier branch), a fixed overhead per lease grant. As in etcd, every Put, Txn (even one
that only reads or deletes) and LeaseGrant is checked, so once the database is past the quota
all of them fail; DeleteRange, Range and Compact are never checked. Departure from etcd: the test is against the bytes the database uses,
not its file size. LMDB reuses freed pages but never shrinks its file, so after a compaction
the space is usable again at once (etcd needs a defrag first for its file to shrink).
"""
from __future__ import annotations

from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.storage.backend import Backend

DEFAULT_QUOTA_BYTES = 2 << 30  # etcd's default: 2 GiB (--quota-backend-bytes=0)
KV_OVERHEAD = 256
LEASE_OVERHEAD = 64


class BackendQuota:
    def __init__(self, quota_bytes: int) -> None:
        """0: etcd's default; negative: no quota."""
        self.limit: int | None = DEFAULT_QUOTA_BYTES if quota_bytes == 0 else None if quota_bytes < 0 else quota_bytes

    def available(self, backend: Backend, cost: int) -> bool:
        if self.limit is None:
            return True
        # the file size (a stat) bounds what is in use (a walk over the sub-databases' stats)
        return backend.size() + cost < self.limit or backend.size_in_use() + cost < self.limit


def put_cost(req: rpc_pb2.PutRequest) -> int:
    return len(req.key) + len(req.value) + KV_OVERHEAD


def txn_cost(req: rpc_pb2.TxnRequest) -> int:
    return max(_ops_cost(req.success), _ops_cost(req.failure))


def _ops_cost(ops) -> int:
    total = 0
    for op in ops:
        kind = op.WhichOneof("request")
        if kind == "request_put":
            total += put_cost(op.request_put)
        elif kind == "request_txn":
            total += txn_cost(op.request_txn)
    return total
