"""RawNode: the server's handle on Raft — feed it time, messages and requests; take Ready batches.

The server's loop (pyetcd/raft/__init__.py states the whole contract):

    rd = node.ready()            # only when node.has_ready()
    persist rd.snapshot, rd.entries, rd.hard_state   (WAL, fsync if rd.must_sync)
    storage.apply_snapshot / append / set_hard_state
    send rd.messages
    apply rd.snapshot, then rd.committed_entries (call apply_conf_change for conf changes)
    serve rd.read_states once applied >= index
    node.advance(rd)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pyetcd.proto.raftpb import raft_pb2
from pyetcd.raft.raft import Config, ProposalDropped, Raft, ReadState, StateType
from pyetcd.raft.tracker import Progress

M = raft_pb2
_LOCAL_ONLY = frozenset({M.MsgHup, M.MsgBeat, M.MsgUnreachable, M.MsgSnapStatus, M.MsgCheckQuorum})


@dataclass(frozen=True)
class SoftState:
    """Volatile state worth reporting: who leads (0: nobody known) and this member's role."""
    lead: int
    state: StateType


@dataclass
class Ready:
    soft_state: SoftState | None             # set when lead or role changed
    hard_state: raft_pb2.HardState | None    # set when term, vote or commit changed: persist it
    read_states: list[ReadState]
    entries: list[raft_pb2.Entry]            # persist (they may replace a suffix of the log)
    snapshot: raft_pb2.Snapshot | None       # persist and install
    committed_entries: list[raft_pb2.Entry]  # apply, in order
    messages: list[raft_pb2.Message]         # send AFTER persisting this Ready's state
    must_sync: bool = field(default=False)   # entries, snapshot or term/vote changed: fsync first


@dataclass(frozen=True)
class Status:
    id: int
    term: int
    vote: int
    commit: int
    applied: int
    lead: int
    state: StateType
    lead_transferee: int
    progress: dict[int, Progress]  # the leader's view (copies); empty on other members


class RawNode:
    def __init__(self, config: Config) -> None:
        self.raft = Raft(config)
        self._prev_soft = SoftState(self.raft.lead, self.raft.state)
        self._prev_hard = self.raft.hard_state()
        self._in_flight: Ready | None = None

    # ---- input ----
    def tick(self) -> None:
        self.raft.tick()

    def campaign(self) -> None:
        """Start an election now (with a pre-vote first if enabled)."""
        self.raft.hup()

    def propose(self, data: bytes) -> None:
        self.propose_batch([data])

    def propose_batch(self, datas: list[bytes]) -> None:
        """Propose normal entries; raises ProposalDropped if they cannot be appended or forwarded."""
        self.raft.step(M.Message(type=M.MsgProp, from_=self.raft.id,
                                 entries=[M.Entry(data=d) for d in datas]))

    def propose_conf_change(self, cc: raft_pb2.ConfChange) -> None:
        """Propose one membership change. While an earlier one is not yet applied, the leader
        turns this one into an empty entry (it never takes effect): watch for it being applied."""
        entry = M.Entry(type=M.EntryConfChange, data=cc.SerializeToString())
        self.raft.step(M.Message(type=M.MsgProp, from_=self.raft.id, entries=[entry]))

    def apply_conf_change(self, cc: raft_pb2.ConfChange) -> raft_pb2.ConfState:
        """Call when a committed conf change entry is applied; returns the new membership."""
        return self.raft.apply_conf_change(cc)

    def step(self, m: raft_pb2.Message) -> None:
        """Feed a message received from a peer (local-only types are refused)."""
        if m.type in _LOCAL_ONLY:
            raise ValueError(f"raft: cannot step local message {M.MessageType.Name(m.type)}")
        try:
            self.raft.step(m)
        except ProposalDropped:
            pass  # a forwarded proposal that cannot be placed: its origin will time out

    def step_snapshot(self, m: raft_pb2.Message) -> bool:
        """Feed a MsgSnap; True if Raft took it (the next Ready installs it), False if it was
        dropped (an older term, or not newer than what this member has)."""
        before = self.raft.log.unstable_snapshot
        self.step(m)
        after = self.raft.log.unstable_snapshot
        return after is not None and after is not before and after.metadata == m.snapshot.metadata

    def read_index(self, request_ctx: bytes) -> None:
        """Ask for a linearizable read; the answer comes as ReadState(index, request_ctx) in a
        later Ready (or never, if leadership changes: the caller times out)."""
        self.raft.step(M.Message(type=M.MsgReadIndex, from_=self.raft.id, context=request_ctx))

    def transfer_leader(self, target: int) -> None:
        self.raft.step(M.Message(type=M.MsgTransferLeader, from_=target, to=self.raft.id))

    def report_unreachable(self, node: int) -> None:
        """The transport failed to send to node: the leader stops streaming to it optimistically."""
        self.raft.step(M.Message(type=M.MsgUnreachable, from_=node))

    def report_snapshot(self, node: int, ok: bool) -> None:
        """Outcome of sending a MsgSnap to node. Required for every MsgSnap sent: until it is
        reported, the leader sends that follower nothing else."""
        self.raft.step(M.Message(type=M.MsgSnapStatus, from_=node, reject=not ok))

    # ---- output ----
    def _soft(self) -> SoftState:
        return SoftState(self.raft.lead, self.raft.state)

    def has_ready(self) -> bool:
        r = self.raft
        log = r.log
        if r.msgs or log.unstable or log.unstable_snapshot is not None or r.read_states:
            return True
        if self._prev_soft.lead != r.lead or self._prev_soft.state is not r.state:
            return True
        hs = self._prev_hard
        if hs.term != r.term or hs.vote != r.vote or hs.commit != log.committed:
            return True
        return log.has_next_committed()

    def ready(self) -> Ready:
        """The pending output. Call advance(rd) once it is handled, before the next ready()."""
        if self._in_flight is not None:
            raise RuntimeError("raft: ready() called again before advance()")
        r = self.raft
        log = r.log
        soft = self._soft()
        hard = r.hard_state()
        prev = self._prev_hard
        hard_changed = hard != prev
        rd = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard_changed else None,
            read_states=r.read_states,
            entries=list(log.unstable),
            snapshot=log.unstable_snapshot,
            committed_entries=log.next_committed(),
            messages=r.msgs,
        )
        rd.must_sync = (bool(rd.entries) or rd.snapshot is not None
                        or (hard_changed and (hard.term != prev.term or hard.vote != prev.vote)))
        r.msgs = []
        r.read_states = []
        self._in_flight = rd
        return rd

    def advance(self, rd: Ready) -> None:
        """The Ready was handled: its state is durable, its messages sent, its entries applied."""
        if rd is not self._in_flight:
            raise RuntimeError("raft: advance() with a Ready that is not the outstanding one")
        self._in_flight = None
        log = self.raft.log
        if rd.soft_state is not None:
            self._prev_soft = rd.soft_state
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.snapshot is not None:
            log.stable_snap_to(rd.snapshot.metadata.index)
            log.applied_to(rd.snapshot.metadata.index)
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)

    def status(self) -> Status:
        r = self.raft
        progress = {}
        if r.state is StateType.LEADER:
            for node, pr in r.prs.progress.items():
                cp = Progress(pr.next, pr.max_inflight, pr.is_learner)
                cp.match, cp.state, cp.recent_active = pr.match, pr.state, pr.recent_active
                progress[node] = cp
        return Status(r.id, r.term, r.vote, r.log.committed, r.log.applied, r.lead, r.state,
                      r.lead_transferee, progress)
