"""Raft log replication: commit rules, batching, in-flight window, fast back-off, snapshots."""
from pyetcd.proto.raftpb import raft_pb2 as M
from pyetcd.raft import ProgressState, StateType
from raft_net import Net


def test_replication_and_commit_by_quorum():
    net = Net([1, 2, 3])
    net.elect(1)
    net.cut = {3}
    net.nodes[1].propose_batch([b"a", b"b"])
    net.pump()
    assert net.datas(1) == net.datas(2) == [b"a", b"b"]  # 2 of 3 suffice
    assert net.datas(3) == []
    net.cut = set()
    net.tick(2)
    assert net.datas(3) == [b"a", b"b"]


def test_proposal_on_follower_is_forwarded():
    net = Net([1, 2, 3])
    net.elect(1)
    net.nodes[3].propose(b"via-3")
    net.pump()
    assert net.datas(1) == [b"via-3"]


def test_one_append_carries_a_batch():
    net = Net([1, 2])
    net.elect(1)
    before = net.count(M.MsgApp)
    net.nodes[1].propose_batch([b"%d" % i for i in range(100)])
    net.pump()
    apps = [m for m in net.sent[-4:] if m.type == M.MsgApp and m.entries]
    assert len(apps) == 1 and len(apps[0].entries) == 100
    assert net.count(M.MsgApp) - before <= 2  # the batch, then the commit index


def test_max_size_per_msg_splits_batches_and_inflight_window_limits_them():
    net = Net([1, 2], max_size_per_msg=1, max_inflight_msgs=3)
    net.elect(1)
    net.pump()
    pr = net.raft(1).prs.progress[2]
    assert pr.state is ProgressState.REPLICATE
    net.cut = {2}  # acknowledgements stop coming
    net.nodes[1].propose_batch([b"x"] * 10)
    net.pump()
    assert len(pr.inflights) == 3 and pr.is_paused()
    assert net.count(M.MsgApp, to=2) - net.count(M.MsgApp, to=2, entries=[]) >= 3


def test_commit_only_entries_of_the_current_term():
    """Raft's Figure 8: an old-term entry on a majority is not committed by counting replicas."""
    net = Net([1, 2, 3, 4, 5], pre_vote=False, check_quorum=False, max_size_per_msg=1)
    net.elect(1)  # term 2
    net.cut = {2, 3, 4, 5}
    net.nodes[1].propose(b"old")  # (index 3, term 2) only on node 1
    net.pump()
    net.cut = {1}
    net.drop = lambda m: m.type == M.MsgApp and m.from_ == 5
    net.elect(5)  # term 3: (index 3, term 3) only on node 5
    net.cut = {5}
    # Node 1's term-4 entry reaches no one that already holds "old".
    net.drop = lambda m: (m.type == M.MsgApp and any(e.term == 4 for e in m.entries)
                          and net.raft(m.to).log.term(3) == 2)
    net.raft(1).become_follower(2, 0)  # as check-quorum would have made it
    net.raft(1).hup()  # rejected at term 3 (2, 3, 4 voted for 5) ...
    net.pump()
    assert net.raft(1).state is StateType.FOLLOWER
    net.elect(1)  # ... wins term 4
    # One entry per message: "old" reached 2, 3 and 4, node 1's term-4 entry did not.
    assert [net.raft(1).prs.progress[i].match for i in (2, 3, 4)] == [3, 3, 3]
    assert net.raft(1).log.committed < 3 and net.datas(1) == []
    # Right so: node 5 can still win and replace "old" by its own entry at index 3.
    net.cut = {1}
    net.drop = lambda m: False
    net.raft(5).become_follower(3, 0)
    net.raft(5).hup()  # term 4: rejected (they voted for 1)
    net.pump()
    net.elect(5)  # term 5
    net.nodes[5].propose(b"new")
    net.pump()
    assert net.raft(2).log.term(3) == 3 and net.datas(2) == [b"new"]


def test_fast_backoff_needs_few_probes():
    net = Net([1, 2, 3], pre_vote=False, check_quorum=False)
    net.elect(1)
    net.cut = {2, 3}
    for i in range(50):
        net.nodes[1].propose(b"lost-%d" % i)  # 50 entries of term 2 only on node 1
    net.pump()
    net.cut = {1}
    net.elect(2)
    net.nodes[2].propose_batch([b"kept-%d" % i for i in range(60)])
    net.pump()
    net.elect(3)  # a leader whose first probe to node 1 comes after index 63
    net.cut = set()
    start = len(net.sent)
    net.tick(3)
    rejections = [m for m in net.sent[start:] if m.type == M.MsgAppResp and m.reject and m.from_ == 1]
    assert 1 <= len(rejections) <= 2  # not one per divergent entry
    assert net.datas(1)[-60:] == [b"kept-%d" % i for i in range(60)]
    assert all(not d.startswith(b"lost") for d in net.datas(1))


def test_snapshot_to_a_follower_behind_the_first_index():
    net = Net([1, 2, 3])
    net.elect(1)
    net.cut = {3}
    for i in range(20):
        net.nodes[1].propose(b"v%d" % i)
    net.pump()
    st = net.storages[1]
    applied = net.raft(1).log.applied
    st.create_snapshot(applied, net.raft(1).prs.conf_state(), b"state@%d" % applied)
    st.compact(applied)
    net.cut = set()
    net.tick(2)
    assert net.count(M.MsgSnap, to=3) == 1
    assert net.storages[3].snapshot().data == b"state@%d" % applied
    assert net.raft(3).log.committed == net.raft(1).log.committed
    assert net.raft(1).prs.progress[3].state is ProgressState.REPLICATE
    net.nodes[1].propose(b"after")
    net.pump()
    assert net.datas(3) == [b"after"]  # the rest came as entries


def test_follower_restart_loses_nothing_persisted():
    net = Net([1, 2, 3])
    net.elect(1)
    net.nodes[1].propose(b"a")
    net.pump()
    net.start(2)
    assert net.raft(2).log.last_index() == net.raft(1).log.last_index()
    assert net.raft(2).state is StateType.FOLLOWER
