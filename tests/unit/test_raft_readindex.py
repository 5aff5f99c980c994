"""ReadIndex: one heartbeat round confirms leadership for every read waiting."""
from pyetcd.proto.raftpb import raft_pb2 as M
from raft_net import Net


def test_reads_waiting_share_one_heartbeat_round():
    net = Net([1, 2, 3])
    net.elect(1)
    net.nodes[1].propose(b"x")
    net.pump()
    commit = net.raft(1).log.committed
    start = len(net.sent)
    net.nodes[1].read_index(b"first")  # starts a round
    net.nodes[1].read_index(b"second")  # arrived after the round started: waits for the next
    net.nodes[1].read_index(b"third")
    net.pump()
    assert [(r.request_ctx, r.index) for r in net.reads[1]] == [
        (b"first", commit), (b"second", commit), (b"third", commit)]
    heartbeats = [m for m in net.sent[start:] if m.type == M.MsgHeartbeat]
    assert len(heartbeats) == 4  # two rounds to two followers, not one per read


def test_read_needs_a_quorum():
    net = Net([1, 2, 3])
    net.elect(1)
    net.cut = {2, 3}
    net.nodes[1].read_index(b"r")
    net.tick(3, ids=[1])
    assert net.reads[1] == []
    net.cut = {3}
    net.tick(1, ids=[1])  # the next regular heartbeat repeats the round
    assert [r.request_ctx for r in net.reads[1]] == [b"r"]


def test_follower_read_is_forwarded_to_the_leader():
    net = Net([1, 2, 3])
    net.elect(1)
    net.nodes[1].propose(b"x")
    net.pump()
    net.nodes[3].read_index(b"on-3")
    net.pump()
    assert [(r.request_ctx, r.index) for r in net.reads[3]] == [(b"on-3", net.raft(1).log.committed)]
    assert net.reads[1] == []


def test_fresh_leader_answers_reads_after_committing_in_its_term():
    net = Net([1, 2, 3], check_quorum=False)  # no lease: 3 may vote for 2 at once
    net.elect(1)
    net.nodes[1].propose(b"x")
    net.pump()
    net.cut = {1}
    net.drop = lambda m: m.type == M.MsgAppResp  # 2's term-3 entry cannot commit yet
    net.elect(2)
    net.nodes[2].read_index(b"r")
    net.pump()
    assert net.reads[2] == []
    net.drop = lambda m: False
    net.tick(2, ids=[2, 3])
    [rs] = net.reads[2]
    assert rs.index == net.raft(2).log.committed and net.raft(2).log.term(rs.index) == net.raft(2).term


def test_single_member_answers_at_once():
    net = Net([1])
    net.elect(1)
    net.nodes[1].read_index(b"r")
    net.pump()
    assert [r.request_ctx for r in net.reads[1]] == [b"r"]


def test_a_read_forwarded_twice_is_answered_to_the_member_that_asked():
    """Member 2 still follows 3 while 3 already follows 1: the read goes 2 -> 3 -> 1. The answer
    must come back to 2, not to 3 (which would take it for a read round of its own)."""
    net = Net([1, 2, 3])
    net.elect(1)
    net.raft(2).lead = 3  # (a stale view, as after a leader change not yet heard of)
    net.nodes[2].read_index(b"on-2")
    net.pump()
    forwarded = [m for m in net.sent if m.type == M.MsgReadIndex and m.to == 1]
    assert forwarded and all(m.from_ == 2 for m in forwarded)
    assert [r.request_ctx for r in net.reads[2]] == [b"on-2"]
    assert net.reads[3] == []
