"""Raft membership changes: one at a time, applied when the entry is applied."""
import pytest

from pyetcd.proto.raftpb import raft_pb2 as M
from pyetcd.raft import MemoryStorage, ProposalDropped, StateType
from raft_net import Net


def change(net: Net, leader: int, kind: int, node: int) -> None:
    net.nodes[leader].propose_conf_change(M.ConfChange(type=kind, node_id=node))
    net.pump()


def join(net: Net, node: int) -> None:
    """A new member starts with an empty storage and learns everything from the leader."""
    net.start(node, MemoryStorage())


def test_add_voter_changes_the_quorum():
    net = Net([1, 2])
    net.elect(1)
    join(net, 3)
    change(net, 1, M.ConfChangeAddNode, 3)
    assert net.raft(1).prs.voters == {1, 2, 3}
    net.tick(3)
    assert net.raft(3).prs.voters == {1, 2, 3}  # learnt from the leader's log or snapshot
    net.cut = {2}
    net.nodes[1].propose(b"x")
    net.pump()
    assert b"x" in net.datas(3)  # 1 and 3 are a quorum of three


def test_learner_gets_the_log_but_neither_votes_nor_counts():
    net = Net([1, 2])
    net.elect(1)
    join(net, 3)
    change(net, 1, M.ConfChangeAddLearnerNode, 3)
    net.tick(3)
    assert net.raft(1).prs.learners == {3} and net.raft(1).prs.voters == {1, 2}
    net.cut = {2}
    net.nodes[1].propose(b"x")
    net.pump()
    assert b"x" not in net.datas(1)  # the learner's copy does not make a quorum
    net.cut = {1, 2}
    net.tick(50, ids=[3])
    assert net.raft(3).state is StateType.FOLLOWER  # learners never campaign
    assert net.count(M.MsgPreVote, from_=3) == 0 and net.count(M.MsgVote, from_=3) == 0


def test_promote_learner():
    net = Net([1, 2, 3], learners=[3], check_quorum=False)  # no lease: 2 may vote at once
    net.elect(1)
    change(net, 1, M.ConfChangeAddNode, 3)
    assert all(net.raft(i).prs.voters == {1, 2, 3} and not net.raft(i).prs.learners for i in (1, 2, 3))
    net.cut = {1}
    net.nodes[3].campaign()
    net.pump()
    assert net.raft(3).state is StateType.LEADER


def test_remove_voter_shrinks_the_quorum():
    net = Net([1, 2, 3])
    net.elect(1)
    change(net, 1, M.ConfChangeRemoveNode, 3)
    assert net.raft(1).prs.voters == {1, 2} and 3 not in net.raft(1).prs.progress
    net.cut = {3}
    net.nodes[1].propose(b"x")
    net.pump()
    assert b"x" in net.datas(1)


def test_removed_leader_hands_leadership_to_a_voter():
    net = Net([1, 2, 3])
    net.elect(1)
    change(net, 1, M.ConfChangeRemoveNode, 1)
    net.tick(3)
    [lead] = [i for i in net.leaders() if net.raft(i).term == max(net.raft(j).term for j in (1, 2, 3))]
    assert lead in (2, 3) and net.raft(1).state is StateType.FOLLOWER
    net.nodes[lead].propose(b"after")
    net.pump()
    assert b"after" in net.datas(2) and b"after" in net.datas(3)


def test_one_change_at_a_time():
    net = Net([1, 2, 3])
    net.elect(1)
    net.cut = {2, 3}  # nothing commits: the first change stays pending
    net.nodes[1].propose_conf_change(M.ConfChange(type=M.ConfChangeRemoveNode, node_id=3))
    with pytest.raises(ProposalDropped):
        net.nodes[1].propose_conf_change(M.ConfChange(type=M.ConfChangeRemoveNode, node_id=2))
    net.pump()
    net.cut = {3}
    net.nodes[2].propose_conf_change(M.ConfChange(type=M.ConfChangeRemoveNode, node_id=2))
    net.pump()  # forwarded from 2 while the first is pending: it becomes an empty entry
    net.cut = set()
    net.tick(2)
    applied = [e for e in net.applied[1] if e.index > 2]
    assert [e.type for e in applied] == [M.EntryConfChange, M.EntryNormal]
    assert net.raft(1).prs.voters == {1, 2}


def test_new_member_behind_compaction_gets_a_snapshot():
    net = Net([1, 2])
    net.elect(1)
    for i in range(10):
        net.nodes[1].propose(b"v%d" % i)
    net.pump()
    applied = net.raft(1).log.applied
    net.storages[1].create_snapshot(applied, net.raft(1).prs.conf_state(), b"image")
    net.storages[1].compact(applied)
    join(net, 3)
    change(net, 1, M.ConfChangeAddLearnerNode, 3)
    net.tick(3)
    assert net.storages[3].snapshot().data == b"image"
    assert net.raft(3).log.committed == net.raft(1).log.committed
