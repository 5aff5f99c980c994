"""Request checks done before proposing (behaviour verified against etcd 3.5.1)."""
from __future__ import annotations

import pytest

from pyetcd import errors
from pyetcd.proto.etcdserverpb import rpc_pb2 as P
from pyetcd.server import checks


def put(key):
    return P.RequestOp(request_put=P.PutRequest(key=key))


def dele(key, end=b""):
    return P.RequestOp(request_delete_range=P.DeleteRangeRequest(key=key, range_end=end))


def rng(key):
    return P.RequestOp(request_range=P.RangeRequest(key=key))


def nested(success=(), failure=()):
    return P.RequestOp(request_txn=P.TxnRequest(success=list(success), failure=list(failure)))


def txn_error(success=(), failure=(), compare=(), max_ops=128):
    try:
        checks.check_txn(P.TxnRequest(compare=list(compare), success=list(success),
                                      failure=list(failure)), max_ops)
    except errors.EtcdError as err:
        return err
    return None


def test_range():
    checks.check_range(P.RangeRequest(key=b"a", sort_order=7))  # etcd 3.5.1 ignores it
    with pytest.raises(errors.EtcdError) as exc:
        checks.check_range(P.RangeRequest(key=b""))
    assert exc.value == errors.ErrEmptyKey
    with pytest.raises(errors.EtcdError) as exc:
        checks.check_range(P.RangeRequest(key=b"a", sort_target=5))
    assert exc.value == errors.ErrInvalidSortOption


@pytest.mark.parametrize("req, err", [
    (P.PutRequest(key=b""), errors.ErrEmptyKey),
    (P.PutRequest(key=b"a", value=b"v", ignore_value=True), errors.ErrValueProvided),
    (P.PutRequest(key=b"a", lease=5, ignore_lease=True), errors.ErrLeaseProvided),
    (P.PutRequest(key=b"a", ignore_value=True, ignore_lease=True), None),
])
def test_put(req, err):
    if err is None:
        checks.check_put(req)
        return
    with pytest.raises(errors.EtcdError) as exc:
        checks.check_put(req)
    assert exc.value == err


def test_delete():
    checks.check_delete_range(P.DeleteRangeRequest(key=b"a"))
    with pytest.raises(errors.EtcdError) as exc:
        checks.check_delete_range(P.DeleteRangeRequest(key=b""))
    assert exc.value == errors.ErrEmptyKey


def test_txn_limits_and_empty_keys():
    assert txn_error([put(b"k%d" % i) for i in range(128)]) is None
    assert txn_error([put(b"k%d" % i) for i in range(129)]) == errors.ErrTooManyOps
    assert txn_error(compare=[P.Compare(key=b"a")] * 129) == errors.ErrTooManyOps
    # a nested txn gets what the outer one leaves of the budget
    assert txn_error([rng(b"a"), nested([rng(b"a")] * 126)]) is None
    assert txn_error([rng(b"a"), nested([rng(b"a")] * 127)]) == errors.ErrTooManyOps
    assert txn_error(compare=[P.Compare(key=b"")]) == errors.ErrEmptyKey
    assert txn_error([put(b"")]) == errors.ErrEmptyKey
    assert txn_error([], [nested([rng(b"")])]) == errors.ErrEmptyKey
    assert txn_error([P.RequestOp()]) == errors.ErrKeyNotFound


@pytest.mark.parametrize("success, duplicate", [
    ([put(b"a"), put(b"a")], True),
    ([put(b"a"), put(b"b")], False),
    ([put(b"b"), dele(b"a", b"c")], True),
    ([put(b"c"), dele(b"a", b"c")], False),
    ([put(b"a"), dele(b"a")], True),
    ([put(b"b"), dele(b"a", b"\0")], False),  # a from-key delete counts as no range here
    ([dele(b"a"), dele(b"a", b"c")], False),
    ([put(b"a"), nested([put(b"a")])], True),
    ([nested([put(b"a")], [put(b"a")])], False),
    ([nested([put(b"a")], [put(b"b")]), nested([put(b"b")])], True),
    ([nested([dele(b"a")]), nested([put(b"a")])], True),
    ([nested([put(b"a")]), nested([dele(b"a")])], False),  # checked before the delete is seen
    ([nested([dele(b"a", b"z")]), put(b"b")], True),
    ([rng(b"a"), rng(b"a"), put(b"a")], False),
])
def test_txn_duplicate_keys(success, duplicate):
    assert txn_error(success) == (errors.ErrDuplicateKey if duplicate else None)
    assert txn_error([], success) == (errors.ErrDuplicateKey if duplicate else None)
