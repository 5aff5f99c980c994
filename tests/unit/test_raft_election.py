"""Raft elections: timeouts, votes, pre-vote, check-quorum, durable votes."""
from pyetcd.proto.raftpb import raft_pb2 as M
from pyetcd.raft import StateType
from raft_net import Net


def test_a_leader_is_elected_by_timeout_alone():
    net = Net([1, 2, 3])
    for _ in range(40):
        net.tick()
        if net.leaders():
            break
    [lead] = net.leaders()
    assert all(net.raft(i).lead == lead for i in (1, 2, 3))
    assert net.raft(lead).term == 2  # pre-vote kept the term from moving more than once


def test_randomized_election_timeout_range():
    net = Net([1, 2, 3], election_tick=10)
    seen = set()
    for _ in range(200):
        r = net.raft(1)
        r.become_follower(r.term, 0)
        seen.add(r.randomized_election_timeout)
    assert seen == set(range(10, 20))


def test_single_member_elects_itself_and_commits():
    net = Net([1])
    net.elect(1)
    net.nodes[1].propose(b"x")
    net.pump()
    assert net.datas(1) == [b"x"]


def test_vote_needs_an_up_to_date_log():
    net = Net([1, 2, 3], check_quorum=False)  # no lease: only the log decides
    net.elect(1)
    net.cut = {3}
    net.nodes[1].propose(b"a")
    net.pump()
    net.cut = {1}
    net.nodes[3].campaign()  # 3 lacks "a": node 2 refuses (pre-vote and vote)
    net.pump()
    assert net.raft(3).state is not StateType.LEADER
    net.nodes[2].campaign()
    net.pump()
    assert net.raft(2).state is StateType.LEADER


def test_prevote_does_not_disrupt_a_stable_leader():
    net = Net([1, 2, 3])
    net.elect(1)
    term = net.raft(1).term
    net.cut = {3}
    net.tick(100)  # 3 campaigns again and again, alone: pre-votes only, its term stays
    assert net.raft(3).term == term
    net.cut = set()
    net.tick(5)
    assert net.leaders() == [1] and net.raft(1).term == term and net.raft(3).lead == 1


def test_leases_ignore_votes_while_a_leader_is_heard():
    net = Net([1, 2, 3], pre_vote=False)
    net.elect(1)
    term = net.raft(1).term
    net.raft(3).hup()  # a real vote at term+1: 2 still hears from 1 and ignores it
    net.pump()
    assert net.raft(2).term == term
    assert net.leaders() == [1]


def test_check_quorum_leader_steps_down_when_cut_off():
    net = Net([1, 2, 3])
    net.elect(1)
    net.cut = {1}
    net.tick(net.cfg["election_tick"], ids=[1])
    assert net.raft(1).state is StateType.LEADER
    net.tick(net.cfg["election_tick"], ids=[1])
    assert net.raft(1).state is StateType.FOLLOWER


def test_vote_is_durable_across_restart():
    net = Net([1, 2, 3], pre_vote=False, check_quorum=False)
    net.raft(1).hup()
    hs_vote = None
    # Node 2 grants its vote; the Ready holding it is persisted before the answer is sent.
    net.pump()
    hs_vote = net.storages[2].hard_state
    assert (hs_vote.term, hs_vote.vote) == (2, 1)
    net.start(2)  # restart from storage
    assert net.raft(2).vote == 1 and net.raft(2).term == 2
    net.raft(2).step(M.Message(type=M.MsgVote, from_=3, to=2, term=2, index=99, log_term=1))
    [resp] = net.raft(2).msgs
    assert resp.reject  # no second vote in term 2
