import pytest

from pyetcd import errors
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.server.membership import MemberChange, Membership, new_member_id
from pyetcd.storage.backend import Backend


def change(kind, member_id, urls=(), name="", learner=False):
    return MemberChange(kind=kind, member=rpc_pb2.Member(ID=member_id, name=name, peerURLs=list(urls)))


def apply(backend, members, c):
    members.check(c)
    members.apply(backend.write_txn(), c)
    backend.commit()


@pytest.fixture
def backend(tmp_path):
    b = Backend(str(tmp_path / "db"))
    yield b
    b.close()


def test_add_promote_update_remove_persist(backend):
    m = Membership(backend)
    apply(backend, m, change(MemberChange.ADD, 1, ["http://a:2380"], "a"))
    apply(backend, m, change(MemberChange.ADD_LEARNER, 2, ["http://b:2380"]))
    assert (m.voters(), m.learners()) == ([1], [2])
    apply(backend, m, change(MemberChange.PROMOTE, 2))
    apply(backend, m, change(MemberChange.UPDATE, 2, ["http://b2:2380"]))
    apply(backend, m, change(MemberChange.REMOVE, 1))
    reloaded = Membership(backend)
    assert reloaded.voters() == [2] and reloaded.removed == {1}
    assert list(reloaded.members[2].peerURLs) == ["http://b2:2380"]
    assert not reloaded.members[2].isLearner


def test_etcd_errors(backend):
    m = Membership(backend)
    apply(backend, m, change(MemberChange.ADD, 1, ["http://a:2380"]))
    apply(backend, m, change(MemberChange.ADD_LEARNER, 2, ["http://b:2380"]))
    cases = [
        (change(MemberChange.ADD, 1, ["http://x:1"]), errors.ErrMemberExist),
        (change(MemberChange.ADD, 3, ["http://a:2380"]), errors.ErrPeerURLExist),
        (change(MemberChange.ADD_LEARNER, 3, ["http://c:1"]), errors.ErrTooManyLearners),
        (change(MemberChange.PROMOTE, 1), errors.ErrMemberNotLearner),
        (change(MemberChange.PROMOTE, 9), errors.ErrMemberNotFound),
        (change(MemberChange.REMOVE, 9), errors.ErrMemberNotFound),
        (change(MemberChange.UPDATE, 2, ["http://a:2380"]), errors.ErrPeerURLExist),
    ]
    for c, err in cases:
        with pytest.raises(errors.EtcdError) as e:
            m.check(c)
        assert e.value == err
    apply(backend, m, change(MemberChange.REMOVE, 2))
    with pytest.raises(errors.EtcdError) as e:
        m.check(change(MemberChange.REMOVE, 2))
    assert e.value == errors.ErrMemberNotFound


def test_member_ids_as_etcd():
    assert f"{new_member_id(['http://localhost:2380'], 'etcd-cluster'):x}" == "8e9e05c52164694d"
    assert new_member_id(["u"], "t", 100) != new_member_id(["u"], "t", 101)
