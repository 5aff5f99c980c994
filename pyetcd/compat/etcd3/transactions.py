"""python-etcd3's transaction builders (``client.transactions``, ``etcd3.transactions``):
``value(key) == b"x"``, ``version(key) > 0``, ``create(key)``, ``mod(key)``, ``lease(key)``;
``put``, ``get``, ``delete``, ``txn`` operations."""
from __future__ import annotations

from typing import Any, Optional

from pyetcd.client import _common as c
from pyetcd.proto.etcdserverpb import rpc_pb2

Compare = rpc_pb2.Compare
_RESULTS = {"==": Compare.EQUAL, "!=": Compare.NOT_EQUAL, "<": Compare.LESS, ">": Compare.GREATER}


class BaseCompare:
    target: int
    field: str

    def __init__(self, key: c.Bytes, range_end: Optional[c.Bytes] = None) -> None:
        self.key, self.range_end = key, range_end
        self.value: Any = None
        self.op: Optional[str] = None

    def _set(self, op: str, value: Any) -> "BaseCompare":
        self.op, self.value = op, value
        return self

    def __eq__(self, other: Any) -> "BaseCompare":  # type: ignore[override]
        return self._set("==", other)

    def __ne__(self, other: Any) -> "BaseCompare":  # type: ignore[override]
        return self._set("!=", other)

    def __lt__(self, other: Any) -> "BaseCompare":
        return self._set("<", other)

    def __gt__(self, other: Any) -> "BaseCompare":
        return self._set(">", other)

    __hash__ = None  # type: ignore[assignment]

    def build_message(self) -> rpc_pb2.Compare:
        compare = Compare(key=c.to_bytes(self.key), target=self.target, result=_RESULTS[self.op or "=="])
        if self.range_end is not None:
            compare.range_end = c.to_bytes(self.range_end)
        setattr(compare, self.field, c.to_bytes(self.value) if self.field == "value" else self.value)
        return compare


class Value(BaseCompare):
    target, field = Compare.VALUE, "value"


class Version(BaseCompare):
    target, field = Compare.VERSION, "version"


class Create(BaseCompare):
    target, field = Compare.CREATE, "create_revision"


class Mod(BaseCompare):
    target, field = Compare.MOD, "mod_revision"


class Lease(BaseCompare):
    target, field = Compare.LEASE, "lease"


def lease_id(lease: Any) -> int:
    """A Lease object or a lease ID -> the ID (python-etcd3 takes both)."""
    return 0 if lease is None else int(getattr(lease, "id", lease))


class Put:
    def __init__(self, key: c.Bytes, value: c.Bytes, lease: Any = None, prev_kv: bool = False) -> None:
        self.key, self.value, self.lease, self.prev_kv = key, value, lease, prev_kv

    def op(self) -> rpc_pb2.RequestOp:
        return c.request_op(c.put_request(self.key, self.value, lease_id(self.lease), self.prev_kv))


class Get:
    def __init__(self, key: c.Bytes, range_end: Optional[c.Bytes] = None) -> None:
        self.key, self.range_end = key, range_end

    def op(self) -> rpc_pb2.RequestOp:
        return c.request_op(c.range_request(self.key, self.range_end or b""))


class Delete:
    def __init__(self, key: c.Bytes, range_end: Optional[c.Bytes] = None, prev_kv: bool = False) -> None:
        self.key, self.range_end, self.prev_kv = key, range_end, prev_kv

    def op(self) -> rpc_pb2.RequestOp:
        return c.request_op(c.delete_request(self.key, self.range_end or b"", self.prev_kv))


class Txn:
    def __init__(self, compare: list, success: Optional[list] = None, failure: Optional[list] = None) -> None:
        self.compare, self.success, self.failure = compare, success or [], failure or []

    def op(self) -> rpc_pb2.RequestOp:
        return rpc_pb2.RequestOp(request_txn=txn_request(self.compare, self.success, self.failure))


def txn_request(compare: list, success: list, failure: list) -> rpc_pb2.TxnRequest:
    return rpc_pb2.TxnRequest(compare=[cmp.build_message() for cmp in compare],
                              success=[op.op() for op in success], failure=[op.op() for op in failure])


class Transactions:
    """What ``client.transactions`` offers."""

    value, version, create, mod, lease = Value, Version, Create, Mod, Lease
    put, get, delete, txn = Put, Get, Delete, Txn
