"""Leader transfer: catch the target up, then TimeoutNow; it campaigns at once."""
import pytest

from pyetcd.proto.raftpb import raft_pb2 as M
from pyetcd.raft import ProposalDropped, StateType
from raft_net import Net


def test_transfer_to_an_up_to_date_follower():
    net = Net([1, 2, 3])  # pre-vote and check-quorum leases on: the transfer overrides them
    net.elect(1)
    term = net.raft(1).term
    net.nodes[1].transfer_leader(3)
    net.pump()
    assert net.leaders() == [3] and net.raft(3).term == term + 1
    assert net.count(M.MsgTimeoutNow, to=3) == 1


def test_transfer_to_a_lagging_follower_catches_it_up_first():
    net = Net([1, 2, 3])
    net.elect(1)
    net.cut = {3}
    net.nodes[1].propose_batch([b"a", b"b"])
    net.pump()
    net.cut = set()
    net.nodes[1].transfer_leader(3)
    with pytest.raises(ProposalDropped):
        net.nodes[1].propose(b"during")  # no proposals while handing over
    net.pump()
    assert net.leaders() == [3]
    assert net.datas(3) == [b"a", b"b"]


def test_transfer_asked_on_a_follower_is_forwarded():
    net = Net([1, 2, 3])
    net.elect(1)
    net.nodes[2].transfer_leader(2)
    net.pump()
    assert net.leaders() == [2]


def test_transfer_aborts_after_an_election_timeout():
    net = Net([1, 2, 3])
    net.elect(1)
    net.cut = {3}
    net.nodes[1].transfer_leader(3)
    net.pump()
    assert net.raft(1).lead_transferee == 3
    net.tick(net.cfg["election_tick"], ids=[1, 2])
    assert net.raft(1).lead_transferee == 0 and net.raft(1).state is StateType.LEADER
    net.nodes[1].propose(b"ok")
    net.pump()
    assert b"ok" in net.datas(1)


def test_transfer_to_a_learner_is_ignored():
    net = Net([1, 2, 3], learners=[3])
    net.elect(1)
    net.nodes[1].transfer_leader(3)
    net.pump()
    assert net.leaders() == [1] and net.raft(1).lead_transferee == 0


def test_transfer_asked_on_a_follower_goes_to_the_target_it_names():
    net = Net([1, 2, 3])
    net.elect(1)
    net.nodes[2].transfer_leader(3)  # asked on follower 2: forwarded to leader 1
    net.pump()
    assert net.leaders() == [3]
