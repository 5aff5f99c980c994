"""Applying KV requests to the MVCC store with etcd 3.5's semantics.

``apply_batch`` runs committed Raft entries in one LMDB write transaction and records the
applied index with them, so replaying entries already applied changes nothing. Headers get only
``revision``; the server fills cluster_id, member_id and raft_term.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Union

from google.protobuf.message import Message

from pyetcd import errors
from pyetcd.errors import EtcdError
from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd.proto.mvccpb import kv_pb2
from pyetcd.storage.gosort import go_sort
from pyetcd.storage.mvcc import Change, KVStore, ReadTxn, WriteTxn

KeyValue = kv_pb2.KeyValue
RangeRequest = rpc_pb2.RangeRequest
Compare = rpc_pb2.Compare
ApplyResult = Union[tuple[Union[Message, EtcdError], list[Change]], None]

_SORT_KEYS: dict[int, Callable[[KeyValue], object]] = {
    RangeRequest.KEY: lambda kv: kv.key,
    RangeRequest.VERSION: lambda kv: kv.version,
    RangeRequest.CREATE: lambda kv: kv.create_revision,
    RangeRequest.MOD: lambda kv: kv.mod_revision,
    RangeRequest.VALUE: lambda kv: kv.value,
}
_COMPARE_FIELDS = {
    Compare.VALUE: "value",
    Compare.VERSION: "version",
    Compare.CREATE: "create_revision",
    Compare.MOD: "mod_revision",
    Compare.LEASE: "lease",
}
_EMPTY_KV = KeyValue()


def _range_end(end: bytes) -> bytes | None:
    """Request range_end -> store end: "" one key, "\\0" no upper bound."""
    if not end:
        return None
    return b"" if end == b"\0" else end


class Applier:
    def __init__(self, store: KVStore, lease_exists: Callable[[int], bool] = lambda lease_id: False
                 ) -> None:
        self.store = store
        self.lease_exists = lease_exists
        self.index = 0  # the Raft index of the entry being applied
        self.request = raft_internal_pb2.InternalRaftRequest()  # ... and its request (guards read its header)
        self.write: WriteTxn | None = None  # ... and the batch's write transaction
        self._handlers: dict[str, Callable[[WriteTxn, Message], Message]] = {
            "put": self._apply_put, "delete_range": self._apply_delete_range,
            "txn": self._apply_txn_request, "compaction": self._apply_compaction}

    def register(self, field: str, handler: Callable[[WriteTxn, Message], Message]) -> None:
        """Apply InternalRaftRequest field ``field`` (one added later, e.g. a lease revoke) with
        ``handler(write_txn, request) -> response``; raising EtcdError before writing fails it."""
        self._handlers[field] = handler

    def guard(self, field: str, check: Callable[[str, Message], None]) -> None:
        """Run ``check(field, request)`` before the handler of ``field``; raising EtcdError fails
        the request unapplied (e.g. an active alarm refusing writes)."""
        inner = self._handlers[field]

        def guarded(w: WriteTxn, req: Message) -> Message:
            check(field, req)
            return inner(w, req)
        self._handlers[field] = guarded

    # ---- reads -----------------------------------------------------------------------------

    def range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        resp = rpc_pb2.RangeResponse()
        with self.store.read() as view:
            self._range(view, req, resp)
        return resp

    @staticmethod
    def _range(view: ReadTxn, req: rpc_pb2.RangeRequest, resp: rpc_pb2.RangeResponse) -> None:
        limit = req.limit
        filtered = (req.min_mod_revision or req.max_mod_revision
                    or req.min_create_revision or req.max_create_revision)
        # Sorting and filtering need every key; otherwise fetch one past the limit for `more`.
        fetch = 0 if req.sort_order or filtered or limit <= 0 else limit + 1
        raws, count, rev = view.range(req.key, _range_end(req.range_end), req.revision, fetch,
                                      req.count_only)
        kvs = list(map(KeyValue.FromString, raws))
        if filtered:
            kvs = [kv for kv in kvs if _within(kv, req)]
        order, target = req.sort_order, req.sort_target
        if order == RangeRequest.NONE and target != RangeRequest.KEY:
            order = RangeRequest.ASCEND
        # (an order outside the enum sorts nothing, as in etcd; key order is the scan order)
        key = _SORT_KEYS[target]
        if order == RangeRequest.ASCEND and target != RangeRequest.KEY:
            go_sort(kvs, lambda a, b: key(a) < key(b))
        elif order == RangeRequest.DESCEND:
            go_sort(kvs, lambda a, b: key(b) < key(a))
        if 0 < limit < len(kvs):
            del kvs[limit:]
            resp.more = True
        if req.keys_only:
            for kv in kvs:
                kv.ClearField("value")
        resp.header.revision = rev
        resp.count = count
        resp.kvs.extend(kvs)

    # ---- writes ----------------------------------------------------------------------------

    def apply_batch(self, batch: list[tuple[int, int, raft_internal_pb2.InternalRaftRequest]],
                    through: tuple[int, int] | None = None) -> list[ApplyResult]:
        """Apply (raft index, raft term, request) items in one write transaction. An item at or
        below the applied index is skipped (result None). ``through``: the (index, term) of the
        last Raft entry the batch stands for, which may carry no request (a leader's empty
        entry, a fenced request): the applied index recorded is that one."""
        results: list[ApplyResult] = []
        last: tuple[int, int] | None = None
        with self.store.write() as w:
            applied = self.store.backend.consistent_index(w.txn)[0]
            for index, term, req in batch:
                if index <= applied:
                    results.append(None)
                    continue
                self.index, self.request, self.write = index, req, w
                try:
                    resp = self._apply_one(w, req)
                except EtcdError as err:
                    if w.pending:
                        # checks run before writes; failing halfway would apply half a request
                        raise RuntimeError(f"request {req.ID} failed after writing") from err
                    resp = err
                results.append((resp, w.finish_request()))
                last = (index, term)
            if through is not None and through[0] > applied:
                last = through
            if last is not None:
                self.store.backend.set_consistent_index(w.txn, *last)
        return results

    def _apply_one(self, w: WriteTxn, req: raft_internal_pb2.InternalRaftRequest) -> Message:
        for field, value in req.ListFields():
            handler = self._handlers.get(field.name)
            if handler is not None:
                return handler(w, value)
        raise ValueError(f"no request in raft entry {req.ID}")

    def _apply_put(self, w: WriteTxn, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        resp = rpc_pb2.PutResponse()
        self._put(w, req, resp, check_lease=True)
        return resp

    def _apply_delete_range(self, w: WriteTxn, req: rpc_pb2.DeleteRangeRequest
                            ) -> rpc_pb2.DeleteRangeResponse:
        resp = rpc_pb2.DeleteRangeResponse()
        self._delete_range(w, req, resp)
        return resp

    def _apply_txn_request(self, w: WriteTxn, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        resp = rpc_pb2.TxnResponse()
        self._txn(w, req, resp)
        return resp

    @staticmethod
    def _apply_compaction(w: WriteTxn, req: rpc_pb2.CompactionRequest
                          ) -> rpc_pb2.CompactionResponse:
        w.compact(req.revision)
        resp = rpc_pb2.CompactionResponse()
        resp.header.revision = w.rev
        return resp

    def _put(self, w: WriteTxn, req: rpc_pb2.PutRequest, resp: rpc_pb2.PutResponse,
             check_lease: bool) -> None:
        if check_lease and req.lease and not self.lease_exists(req.lease):
            raise errors.ErrLeaseNotFound
        prev = w.get(req.key)
        value, lease = req.value, req.lease
        if req.ignore_value or req.ignore_lease:
            if prev is None:
                raise errors.ErrKeyNotFound
            if req.ignore_value:
                value = prev.value
            if req.ignore_lease:
                lease = prev.lease
        resp.header.revision = w.put(req.key, value, lease, prev)
        if req.prev_kv and prev is not None:
            resp.prev_kv.CopyFrom(prev)

    @staticmethod
    def _delete_range(w: WriteTxn, req: rpc_pb2.DeleteRangeRequest,
                      resp: rpc_pb2.DeleteRangeResponse) -> None:
        deleted, prevs = w.delete_range(req.key, _range_end(req.range_end), req.prev_kv)
        resp.header.revision = w.visible_rev()
        resp.deleted = deleted
        if prevs:
            resp.prev_kvs.extend(map(KeyValue.FromString, prevs))

    # ---- txn -------------------------------------------------------------------------------

    def _txn(self, w: WriteTxn, req: rpc_pb2.TxnRequest, resp: rpc_pb2.TxnResponse) -> None:
        # Every compare, nested ones included, sees the store as it was before the txn; all
        # checks pass before anything is written, so a failing txn changes nothing.
        path = _decide(w, req)
        if not _read_only(req):
            self._walk(w, req, iter(path), self._check_put)
        self._walk(w, req, iter(path), _check_range)
        self._apply_txn(w, req, iter(path), resp)
        resp.header.revision = w.visible_rev()

    def _walk(self, view: ReadTxn, req: rpc_pb2.TxnRequest, path: Iterator[bool],
              check: Callable[[ReadTxn, rpc_pb2.RequestOp], None]) -> None:
        for op in req.success if next(path) else req.failure:
            if op.WhichOneof("request") == "request_txn":
                self._walk(view, op.request_txn, path, check)
            else:
                check(view, op)

    def _check_put(self, view: ReadTxn, op: rpc_pb2.RequestOp) -> None:
        if op.WhichOneof("request") != "request_put":
            return
        put = op.request_put
        if (put.ignore_value or put.ignore_lease) and view.get(put.key) is None:
            raise errors.ErrKeyNotFound
        if put.lease and not self.lease_exists(put.lease):
            raise errors.ErrLeaseNotFound

    def _apply_txn(self, w: WriteTxn, req: rpc_pb2.TxnRequest, path: Iterator[bool],
                   resp: rpc_pb2.TxnResponse) -> None:
        resp.succeeded = next(path)
        for op in req.success if resp.succeeded else req.failure:
            kind = op.WhichOneof("request")
            out = resp.responses.add()
            if kind == "request_range":
                self._range(w, op.request_range, out.response_range)
            elif kind == "request_put":
                self._put(w, op.request_put, out.response_put, check_lease=False)
            elif kind == "request_delete_range":
                self._delete_range(w, op.request_delete_range, out.response_delete_range)
            elif kind == "request_txn":
                out.response_txn.header.SetInParent()
                self._apply_txn(w, op.request_txn, path, out.response_txn)


def _within(kv: KeyValue, req: rpc_pb2.RangeRequest) -> bool:
    return not ((req.max_mod_revision and kv.mod_revision > req.max_mod_revision)
                or (req.min_mod_revision and kv.mod_revision < req.min_mod_revision)
                or (req.max_create_revision and kv.create_revision > req.max_create_revision)
                or (req.min_create_revision and kv.create_revision < req.min_create_revision))


def _check_range(view: ReadTxn, op: rpc_pb2.RequestOp) -> None:
    if op.WhichOneof("request") != "request_range":
        return
    rev = op.request_range.revision
    if rev > view.rev:
        raise errors.ErrFutureRev
    if rev and rev < view.compact_rev:
        raise errors.ErrCompacted


def _decide(view: ReadTxn, req: rpc_pb2.TxnRequest) -> list[bool]:
    """Which branch each txn takes, the outer one and then nested ones in order (pre-order)."""
    ok = all(_compare(view, c) for c in req.compare)
    path = [ok]
    for op in req.success if ok else req.failure:
        if op.WhichOneof("request") == "request_txn":
            path += _decide(view, op.request_txn)
    return path


def _compare(view: ReadTxn, c: rpc_pb2.Compare) -> bool:
    raws, _, _ = view.range(c.key, _range_end(c.range_end))
    if not raws:
        if c.target == Compare.VALUE:
            return False  # a value compare on missing keys always fails
        return _compare_kv(c, _EMPTY_KV)
    return all(_compare_kv(c, KeyValue.FromString(raw)) for raw in raws)


def _compare_kv(c: rpc_pb2.Compare, kv: KeyValue) -> bool:
    field = _COMPARE_FIELDS.get(c.target)
    if field is None:
        diff = 0
    else:
        have, want = getattr(kv, field), getattr(c, field)
        diff = (have > want) - (have < want)
    if c.result == Compare.EQUAL:
        return diff == 0
    if c.result == Compare.NOT_EQUAL:
        return diff != 0
    if c.result == Compare.GREATER:
        return diff > 0
    if c.result == Compare.LESS:
        return diff < 0
    return True


def _read_only(req: rpc_pb2.TxnRequest) -> bool:
    for op in (*req.success, *req.failure):
        kind = op.WhichOneof("request")
        if kind in ("request_put", "request_delete_range"):
            return False
        if kind == "request_txn" and not _read_only(op.request_txn):
            return False
    return True
