"""Validation of KV requests before they are proposed (etcd's v3rpc request checks).

Each check raises the EtcdError etcd answers with; nothing here reads the store.
"""
from __future__ import annotations

from pyetcd import errors
from pyetcd.proto.etcdserverpb import rpc_pb2

_SORT_TARGETS = frozenset(rpc_pb2.RangeRequest.SortTarget.values())


def check_range(req: rpc_pb2.RangeRequest) -> None:
    if not req.key:
        raise errors.ErrEmptyKey
    # etcd 3.5.1 ignores an unknown sort order and crashes on an unknown sort target;
    # refusing the target is what later etcd releases do.
    if req.sort_target not in _SORT_TARGETS:
        raise errors.ErrInvalidSortOption


def check_put(req: rpc_pb2.PutRequest) -> None:
    if not req.key:
        raise errors.ErrEmptyKey
    if req.ignore_value and req.value:
        raise errors.ErrValueProvided
    if req.ignore_lease and req.lease:
        raise errors.ErrLeaseProvided


def check_delete_range(req: rpc_pb2.DeleteRangeRequest) -> None:
    if not req.key:
        raise errors.ErrEmptyKey


def check_txn(req: rpc_pb2.TxnRequest, max_txn_ops: int) -> None:
    _check_txn_ops(req, max_txn_ops)
    _writes(req.success)
    _writes(req.failure)


def _check_txn_ops(req: rpc_pb2.TxnRequest, max_txn_ops: int) -> None:
    ops = max(len(req.compare), len(req.success), len(req.failure))
    if ops > max_txn_ops:
        raise errors.ErrTooManyOps
    if any(not c.key for c in req.compare):
        raise errors.ErrEmptyKey
    # a nested txn may use only what its parent left of the budget
    for op in (*req.success, *req.failure):
        _check_op(op, max_txn_ops - ops)


def _check_op(op: rpc_pb2.RequestOp, max_txn_ops: int) -> None:
    kind = op.WhichOneof("request")
    if kind == "request_range":
        check_range(op.request_range)
    elif kind == "request_put":
        check_put(op.request_put)
    elif kind == "request_delete_range":
        check_delete_range(op.request_delete_range)
    elif kind == "request_txn":
        _check_txn_ops(op.request_txn, max_txn_ops)
    else:
        raise errors.ErrKeyNotFound  # an empty op: etcd answers "key not found"


class _Deletes:
    """The key ranges deleted by one branch (and the branches nested below it)."""

    def __init__(self) -> None:
        self.ranges: list[tuple[bytes, bytes | None]] = []

    def add(self, req: rpc_pb2.DeleteRangeRequest) -> None:
        self.ranges.append((req.key, req.range_end or None))

    def covers(self, key: bytes) -> bool:
        # a range whose end sorts before its start (e.g. "\0", from-key) covers nothing here
        return any(key == start if end is None else start <= key < end for start, end in self.ranges)


def _writes(ops: list[rpc_pb2.RequestOp]) -> tuple[set[bytes], _Deletes]:
    """The keys one branch puts and the ranges it deletes; raises ErrDuplicateKey when a key
    is written twice: put twice, or put inside a range deleted at the same level or by a
    nested txn checked before it. Deletes may overlap each other, and the two branches of a
    nested txn may put the same key (only one of them runs)."""
    dels = _Deletes()
    for op in ops:
        if op.WhichOneof("request") == "request_delete_range":
            dels.add(op.request_delete_range)
    puts: set[bytes] = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        then_puts, then_dels = _writes(op.request_txn.success)
        else_puts, else_dels = _writes(op.request_txn.failure)
        for key in then_puts:
            if key in puts or dels.covers(key):
                raise errors.ErrDuplicateKey
            puts.add(key)
        for key in else_puts:
            if (key in puts and key not in then_puts) or dels.covers(key):
                raise errors.ErrDuplicateKey
            puts.add(key)
        dels.ranges += then_dels.ranges + else_dels.ranges
    for op in ops:
        if op.WhichOneof("request") == "request_put":
            key = op.request_put.key
            if key in puts or dels.covers(key):
                raise errors.ErrDuplicateKey
            puts.add(key)
    return puts, dels
