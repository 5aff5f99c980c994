"""A small deterministic network of RawNodes for the Raft unit tests (tests/sim does it at scale)."""
from __future__ import annotations

import random
from collections import deque
from typing import Callable

from pyetcd.proto.raftpb import raft_pb2 as M
from pyetcd.raft import Config, MemoryStorage, RawNode, StateType


def bootstrap_storage(voters: list[int], learners: list[int] = ()) -> MemoryStorage:
    """A member's storage at creation: a snapshot at index 1 holding the initial membership."""
    st = MemoryStorage()
    st.apply_snapshot(M.Snapshot(metadata=M.SnapshotMetadata(
        index=1, term=1, conf_state=M.ConfState(voters=voters, learners=list(learners)))))
    st.set_hard_state(M.HardState(term=1, commit=1))
    return st


class Net:
    def __init__(self, ids: list[int], learners: list[int] = (), **cfg) -> None:
        self.cfg = dict(election_tick=10, heartbeat_tick=1)
        self.cfg.update(cfg)
        self.storages = {i: bootstrap_storage([v for v in ids if v not in learners], learners) for i in ids}
        self.nodes: dict[int, RawNode] = {}
        self.applied: dict[int, list[M.Entry]] = {}
        self.reads: dict[int, list] = {}
        self.sent: list[M.Message] = []     # every message delivered or dropped, in order
        self.queue: deque[M.Message] = deque()
        self.cut: set[int] = set()          # isolated members
        self.drop: Callable[[M.Message], bool] = lambda m: False
        for i in ids:
            self.start(i)

    def start(self, i: int, storage: MemoryStorage | None = None) -> RawNode:
        if storage is not None:
            self.storages[i] = storage
        self.nodes[i] = RawNode(Config(id=i, storage=self.storages[i], rng=random.Random(i), **self.cfg))
        self.applied.setdefault(i, [])
        self.reads.setdefault(i, [])
        return self.nodes[i]

    def raft(self, i: int):
        return self.nodes[i].raft

    def handle_ready(self, i: int) -> None:
        node, st = self.nodes[i], self.storages[i]
        rd = node.ready()
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
        st.append(rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
        self.queue.extend(rd.messages)
        for e in rd.committed_entries:
            self.applied[i].append(e)
            if e.type == M.EntryConfChange:
                node.apply_conf_change(M.ConfChange.FromString(e.data))
        self.reads[i].extend(rd.read_states)
        node.advance(rd)

    def pump(self, max_rounds: int = 1000) -> None:
        """Handle every Ready and deliver every message until the network is quiet."""
        for _ in range(max_rounds):
            busy = False
            for i, node in self.nodes.items():
                if node.has_ready():
                    self.handle_ready(i)
                    busy = True
            while self.queue:
                busy = True
                m = self.queue.popleft()
                self.sent.append(m)
                if m.to in self.cut or m.from_ in self.cut or m.to not in self.nodes or self.drop(m):
                    if m.type == M.MsgSnap and m.from_ in self.nodes:
                        self.nodes[m.from_].report_snapshot(m.to, False)
                    continue
                self.nodes[m.to].step(m)
                if m.type == M.MsgSnap:
                    self.nodes[m.from_].report_snapshot(m.to, True)
            if not busy:
                return
        raise AssertionError("network did not settle")

    def tick(self, n: int = 1, ids: list[int] | None = None) -> None:
        for _ in range(n):
            for i in ids or list(self.nodes):
                self.nodes[i].tick()
            self.pump()

    def elect(self, i: int) -> None:
        self.nodes[i].campaign()
        self.pump()
        assert self.raft(i).state is StateType.LEADER

    def leaders(self) -> list[int]:
        return [i for i in self.nodes if self.raft(i).state is StateType.LEADER]

    def datas(self, i: int) -> list[bytes]:
        return [e.data for e in self.applied[i] if e.type == M.EntryNormal and e.data]

    def count(self, type_: int, **match) -> int:
        return sum(1 for m in self.sent if m.type == type_
                   and all(getattr(m, k) == v for k, v in match.items()))
