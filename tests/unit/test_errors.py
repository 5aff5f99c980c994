"""etcd's errors as classes: raised and caught by name, equal by code and message, and rebuilt from
a gRPC status on the client side."""
from __future__ import annotations

import pytest

from pyetcd import errors


def test_each_error_is_a_class_named_as_etcd_names_it():
    assert errors.ErrCompacted.__name__ == "ErrCompacted"
    assert issubclass(errors.ErrCompacted, errors.EtcdError)
    with pytest.raises(errors.ErrCompacted) as exc:
        raise errors.ErrCompacted
    assert (exc.value.code, exc.value.message, str(exc.value)) == (
        errors.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted",
        "etcdserver: mvcc: required revision has been compacted")
    assert repr(exc.value) == "ErrCompacted(11, 'etcdserver: mvcc: required revision has been compacted')"


def test_errors_compare_by_code_and_message():
    assert errors.ErrNoLeader() == errors.ErrNoLeader
    assert errors.EtcdError(errors.UNAVAILABLE, "etcdserver: no leader") == errors.ErrNoLeader()
    assert errors.ErrNoLeader() != errors.ErrTimeout()
    assert len({errors.ErrNoLeader(), errors.EtcdError(errors.UNAVAILABLE, "etcdserver: no leader")}) == 1


def test_from_status_gives_etcds_class_or_a_plain_error():
    err = errors.from_status(errors.NOT_FOUND, "etcdserver: requested lease not found")
    assert type(err) is errors.ErrLeaseNotFound
    other = errors.from_status(errors.UNKNOWN, "something else")
    assert type(other) is errors.EtcdError and (other.code, other.message) == (errors.UNKNOWN, "something else")
    # the code counts too: the same text with another code is not etcd's error
    assert type(errors.from_status(errors.UNKNOWN, "etcdserver: requested lease not found")) is errors.EtcdError
