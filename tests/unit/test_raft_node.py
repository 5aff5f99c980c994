"""The Raft driver's duties toward Raft: every snapshot send reported, proposals batched under the
peer frame limit, dropped proposals reported at once."""
from __future__ import annotations

import asyncio

from pyetcd.raft import ProposalDropped
from pyetcd.server import raft_node
from pyetcd.server.raft_node import RaftNode
from pyetcd.proto.raftpb import raft_pb2


class FakeNode:
    def __init__(self, drop: bool = False) -> None:
        self.batches: list[list[bytes]] = []
        self.reports: list[tuple[int, bool]] = []
        self.drop = drop

    def propose_batch(self, datas: list[bytes]) -> None:
        if self.drop:
            raise ProposalDropped("no leader")
        self.batches.append(datas)

    def report_snapshot(self, node: int, ok: bool) -> None:
        self.reports.append((node, ok))


class Handler:
    def __init__(self) -> None:
        self.dropped: list[int] = []

    async def snapshot_copy(self):
        raise OSError(28, "No space left on device")

    def on_proposals_dropped(self, ids: list[int]) -> None:
        self.dropped += ids


def driver(node: FakeNode, handler: Handler) -> RaftNode:
    return RaftNode(node, None, None, None, handler, tick_seconds=0.1, fatal=lambda msg, exc: None)


async def test_a_snapshot_copy_that_fails_is_reported_to_raft():
    """Until a MsgSnap's outcome is reported the leader sends that follower nothing more."""
    node = FakeNode()
    await driver(node, Handler())._send_snapshot(raft_pb2.Message(type=raft_pb2.MsgSnap, to=7))
    assert node.reports == [(7, False)]


async def test_proposals_are_batched_under_the_frame_limit(monkeypatch):
    monkeypatch.setattr(raft_node, "MAX_PROPOSAL_BATCH_BYTES", 100)
    node = FakeNode()
    rn = driver(node, Handler())
    for i in range(10):
        rn.propose(i, b"x" * 40)
    await asyncio.sleep(0)
    assert [len(b) for b in node.batches] == [2, 2, 2, 2, 2]


async def test_dropped_proposals_are_reported_at_once():
    handler = Handler()
    rn = driver(FakeNode(drop=True), handler)
    rn.propose(1, b"a")
    rn.propose(2, b"b")
    await asyncio.sleep(0)
    assert handler.dropped == [1, 2]


class FakeWAL:
    def __init__(self) -> None:
        self.saves: list[tuple[object, int, bool]] = []

    def save(self, hard_state, entries, *, sync: bool) -> None:
        self.saves.append((hard_state, len(entries), sync))


async def test_a_committed_conf_change_is_durable_before_it_applies():
    """Found by the whole-member simulation (F7): a removal acknowledged in a 2-member cluster,
    its commit index not synced, was undone by a power loss: the survivor needed the removed
    member's vote forever."""
    from pyetcd.raft import MemoryStorage, Ready

    class Applying(Handler):
        def apply(self, entries):
            pass

        async def after_advance(self):
            pass

    class Node(FakeNode):
        def advance(self, rd):
            pass

    storage = MemoryStorage()
    storage.set_hard_state(raft_pb2.HardState(term=2, commit=18))
    wal = FakeWAL()
    rn = RaftNode(Node(), storage, wal, None, Applying(), tick_seconds=0.1, fatal=lambda msg, exc: None)
    conf_change = raft_pb2.Entry(index=18, term=2, type=raft_pb2.EntryConfChange)
    await rn._handle(Ready(soft_state=None, hard_state=None, read_states=[], entries=[], snapshot=None,
                           committed_entries=[conf_change], messages=[]))
    assert wal.saves == [(storage.hard_state, 0, True)]
