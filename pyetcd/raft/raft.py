"""The Raft state machine: one member's view of elections, replication, membership and reads.

Pure and deterministic: it reacts to tick(), step(message) and the local requests, and leaves
its output in ``msgs`` (to send), ``read_states`` and the log's unstable part; RawNode packages
that output as Ready batches. The only randomness (the election timeout) comes from the seeded
``random.Random`` in the Config.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum

from pyetcd.proto.raftpb import raft_pb2
from pyetcd.raft.log import RaftLog
from pyetcd.raft.readindex import ReadRounds
from pyetcd.raft.storage import CompactedError, MemoryStorage
from pyetcd.raft.tracker import Progress, ProgressState, ProgressTracker, VoteResult

M = raft_pb2
Entry = M.Entry
Message = M.Message

CAMPAIGN_TRANSFER = b"CampaignTransfer"  # MsgVote context: a leader transfer, ignore leases
NO_LIMIT = 1 << 62


class ProposalDropped(Exception):
    """The proposal was not appended: no leader known, a leader transfer is running, or this
    member is not in the configuration. The caller fails the request (it may retry)."""


class StateType(Enum):
    FOLLOWER = "StateFollower"
    PRE_CANDIDATE = "StatePreCandidate"
    CANDIDATE = "StateCandidate"
    LEADER = "StateLeader"


@dataclass
class Config:
    """How a member runs Raft. Ticks are the server's unit of time (etcd: 100 ms)."""
    id: int
    storage: MemoryStorage
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    election_tick: int = 10          # followers campaign after election_tick..2*election_tick-1 ticks
    heartbeat_tick: int = 1          # the leader heartbeats every heartbeat_tick ticks
    applied: int = 0                 # last index the state machine holds (0: the snapshot's)
    max_size_per_msg: int = 1 << 20  # bytes of entries per MsgApp (at least one entry)
    max_committed_size_per_ready: int = 64 << 20
    max_inflight_msgs: int = 256     # unacknowledged MsgApp per follower in replicate state
    check_quorum: bool = True
    pre_vote: bool = True


@dataclass(frozen=True)
class ReadState:
    """A ReadIndex answer: serve the read once the applied index reaches ``index``."""
    index: int
    request_ctx: bytes


class Raft:
    def __init__(self, cfg: Config) -> None:
        if cfg.id == 0:
            raise ValueError("raft: id 0 is reserved (no node)")
        if cfg.heartbeat_tick <= 0 or cfg.election_tick <= cfg.heartbeat_tick:
            raise ValueError("raft: need 0 < heartbeat_tick < election_tick")
        self.id = cfg.id
        self.rng = cfg.rng
        self.election_timeout = cfg.election_tick
        self.heartbeat_timeout = cfg.heartbeat_tick
        self.max_msg_size = cfg.max_size_per_msg
        self.check_quorum = cfg.check_quorum
        self.pre_vote = cfg.pre_vote
        self.log = RaftLog(cfg.storage, cfg.max_committed_size_per_ready)
        self.prs = ProgressTracker(cfg.max_inflight_msgs)
        hs, cs = cfg.storage.initial_state()
        self.prs.set_conf(cs, self.log.last_index() + 1)
        self.term = hs.term
        self.vote = hs.vote
        if hs.commit:
            self.log.commit_to(hs.commit)
        if cfg.applied:
            self.log.applied_to(cfg.applied)
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.reads = ReadRounds()
        self.pending_reads: list[Message] = []  # arrived before this leader committed in its term
        self.state = StateType.FOLLOWER
        self.lead = 0
        self.lead_transferee = 0
        self.pending_conf_index = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout
        self.become_follower(self.term, 0)

    # ---- helpers ----
    def _send(self, type_: int, to: int, **fields) -> Message:
        fields.setdefault("term", self.term)
        m = Message(type=type_, to=to, from_=self.id, **fields)
        self.msgs.append(m)
        return m

    def promotable(self) -> bool:
        """Voters campaign, learners never. A member removed from the voters may still campaign:
        its log can be longer than every remaining voter's (entries appended after its removal
        entry), and then only it can win; as leader it hands leadership to a voter at once."""
        prs = self.prs
        return self.id in prs.voters or (bool(prs.voters) and self.id not in prs.learners)

    def hard_state(self) -> raft_pb2.HardState:
        return raft_pb2.HardState(term=self.term, vote=self.vote, commit=self.log.committed)

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = 0
        self.lead = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(self.election_timeout)
        self.lead_transferee = 0
        self.prs.reset_votes()
        nxt = self.log.last_index() + 1
        max_inflight = self.prs.max_inflight
        for node, pr in self.prs.progress.items():
            fresh = Progress(nxt, max_inflight, pr.is_learner)
            if node == self.id:
                fresh.match = nxt - 1
            self.prs.progress[node] = fresh
        self.pending_conf_index = 0
        self.reads.reset()
        self.pending_reads = []

    # ---- state transitions ----
    def become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.state = StateType.FOLLOWER
        self.lead = lead

    def become_pre_candidate(self) -> None:
        # Neither the term nor the vote changes: a pre-vote disturbs no one.
        self.state = StateType.PRE_CANDIDATE
        self.prs.reset_votes()
        self.lead = 0

    def become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.vote = self.id
        self.state = StateType.CANDIDATE

    def become_leader(self) -> None:
        self._reset(self.term)
        self.state = StateType.LEADER
        self.lead = self.id
        own = self.prs.progress.get(self.id)
        if own is not None:
            own.become_replicate()
            own.recent_active = True
        # No conf change may be proposed until everything before this term is applied.
        self.pending_conf_index = self.log.last_index()
        # An entry of the new term: committing it commits everything before it.
        self._append_entries([b""])
        if self.id not in self.prs.voters:
            self._hand_off()

    # ---- ticks ----
    def tick(self) -> None:
        if self.state is StateType.LEADER:
            self._tick_heartbeat()
        else:
            self.election_elapsed += 1
            if self.election_elapsed >= self.randomized_election_timeout and self.promotable():
                self.election_elapsed = 0
                self.hup()

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum and not self._check_quorum():
                return
            if self.lead_transferee:
                self.lead_transferee = 0  # the transfer did not finish within an election timeout
            if self.id not in self.prs.voters:
                self._hand_off()  # removed: retry the hand-off
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.bcast_heartbeat()

    def _check_quorum(self) -> bool:
        """Leader: step down unless a quorum was heard from since the last check."""
        if not self.prs.quorum_active(self.id):
            self.become_follower(self.term, 0)
            return False
        for node, pr in self.prs.progress.items():
            if node != self.id:
                pr.recent_active = False
        return True

    # ---- elections ----
    def hup(self, transfer: bool = False) -> None:
        if self.state is StateType.LEADER or not self.promotable():
            return
        if self._unapplied_conf_change():
            return  # its outcome may make us a non-voter
        if self.pre_vote and not transfer:
            self._campaign(pre=True)
        else:
            self._campaign(pre=False, transfer=transfer)

    def _unapplied_conf_change(self) -> bool:
        lo = max(self.log.applied + 1, self.log.first_index())
        if lo > self.log.committed:
            return False
        return any(e.type == M.EntryConfChange for e in self.log.slice(lo, self.log.committed + 1))

    def _campaign(self, pre: bool, transfer: bool = False) -> None:
        if pre:
            self.become_pre_candidate()
            vote_type, term = M.MsgPreVote, self.term + 1
        else:
            self.become_candidate()
            vote_type, term = M.MsgVote, self.term
        self.prs.record_vote(self.id, True)
        if self.prs.vote_result() is VoteResult.WON:
            self._won(pre)
            return
        index, log_term = self.log.last_index(), self.log.last_term()
        ctx = CAMPAIGN_TRANSFER if transfer else b""
        for v in sorted(self.prs.voters):
            if v != self.id:
                self._send(vote_type, v, term=term, index=index, log_term=log_term, context=ctx)

    def _won(self, pre: bool) -> None:
        if pre:
            self._campaign(pre=False)
        else:
            self.become_leader()
            self.bcast_append()

    def _handle_vote(self, m: Message) -> None:
        resp = M.MsgPreVoteResp if m.type == M.MsgPreVote else M.MsgVoteResp
        can_vote = (self.vote == m.from_ or (self.vote == 0 and self.lead == 0)
                    or (m.type == M.MsgPreVote and m.term > self.term))
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(resp, m.from_, term=m.term)
            if m.type == M.MsgVote:
                self.election_elapsed = 0
                self.vote = m.from_
        else:
            self._send(resp, m.from_, reject=True)

    # ---- the entry point for messages ----
    def step(self, m: Message) -> None:
        if m.term > self.term:
            if m.type in (M.MsgVote, M.MsgPreVote):
                in_lease = (self.check_quorum and self.lead != 0
                            and self.election_elapsed < self.election_timeout)
                if in_lease and m.context != CAMPAIGN_TRANSFER:
                    return  # we heard from a leader recently: do not let it be disrupted
            if m.type == M.MsgPreVote or (m.type == M.MsgPreVoteResp and not m.reject):
                pass  # pre-vote terms are hypothetical: they change nothing
            elif m.type in (M.MsgApp, M.MsgHeartbeat, M.MsgSnap):
                self.become_follower(m.term, m.from_)
            else:
                self.become_follower(m.term, 0)
        elif m.term < self.term and m.term != 0:
            if (self.check_quorum or self.pre_vote) and m.type in (M.MsgHeartbeat, M.MsgApp):
                # A leader cut off by a partition: tell it our term so it steps down.
                self._send(M.MsgAppResp, m.from_)
            elif m.type == M.MsgPreVote:
                self._send(M.MsgPreVoteResp, m.from_, reject=True)
            return

        t = m.type
        if t == M.MsgHup:
            self.hup()
        elif t == M.MsgVote or t == M.MsgPreVote:
            self._handle_vote(m)
        elif self.state is StateType.LEADER:
            self._step_leader(m)
        elif self.state is StateType.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    # ---- leader ----
    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == M.MsgBeat:
            self.bcast_heartbeat()
            return
        if t == M.MsgCheckQuorum:
            self._check_quorum()
            return
        if t == M.MsgProp:
            self._leader_propose(list(m.entries), local=m.from_ == self.id)
            return
        if t == M.MsgReadIndex:
            self._leader_read_index(m)
            return
        pr = self.prs.progress.get(m.from_)
        if pr is None:
            return
        if t == M.MsgAppResp:
            self._handle_append_response(m, pr)
        elif t == M.MsgHeartbeatResp:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state is ProgressState.REPLICATE and len(pr.inflights) >= pr.max_inflight:
                pr.inflights.popleft()  # let one append through: the window may hold lost ones
            if pr.match < self.log.last_index():
                self._send_append(m.from_)
            if m.context:
                self._read_round_ack(m.context, m.from_)
        elif t == M.MsgSnapStatus:
            if pr.state is ProgressState.SNAPSHOT:
                if m.reject:
                    pr.pending_snapshot = 0
                pr.become_probe()
                pr.probe_sent = True  # wait for the next heartbeat answer before probing
        elif t == M.MsgUnreachable:
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
        elif t == M.MsgTransferLeader:
            self._leader_transfer(m.from_, pr)

    def _leader_propose(self, entries: list[Entry], local: bool) -> None:
        if self.id not in self.prs.progress or self.lead_transferee:
            raise ProposalDropped("raft proposal dropped")
        datas = []
        for e in entries:
            if e.type == M.EntryConfChange:
                if self.pending_conf_index > self.log.applied:
                    if local:
                        raise ProposalDropped("a configuration change is already pending")
                    e = Entry()  # one change at a time: a forwarded one becomes a no-op
                else:
                    self.pending_conf_index = self.log.last_index() + len(datas) + 1
            datas.append(e)
        self._append_entries(datas)
        self.bcast_append()

    def _append_entries(self, items: list) -> None:
        """Leader: append proposals (bytes or Entry with type and data) at the end of the log."""
        li = self.log.last_index()
        term = self.term
        ents = []
        for i, item in enumerate(items, li + 1):
            if isinstance(item, bytes):
                ents.append(Entry(term=term, index=i, data=item))
            else:
                ents.append(Entry(term=term, index=i, type=item.type, data=item.data))
        last = self.log.append(ents)
        own = self.prs.progress.get(self.id)
        if own is not None:
            own.maybe_update(last)
        self._maybe_commit()

    def _maybe_commit(self) -> bool:
        if not self.log.maybe_commit(self.prs.committed(), self.term):
            return False
        if self.pending_reads and self._committed_in_term():
            pending, self.pending_reads = self.pending_reads, []
            for m in pending:
                self._leader_read_index(m)
        return True

    def _committed_in_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            hint = m.reject_hint
            if m.log_term > 0:
                hint = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, hint):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.from_)
            return
        was_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT:
            if pr.match >= pr.pending_snapshot:
                pr.become_probe()
                pr.become_replicate()
        else:
            pr.free_inflights(m.index)
        if self._maybe_commit():
            self.bcast_append()
        elif was_paused:
            self._send_append(m.from_)
        while self._send_append(m.from_, send_empty=False):
            pass
        if m.from_ == self.lead_transferee and pr.match == self.log.last_index():
            self._send(M.MsgTimeoutNow, m.from_)

    def _send_append(self, to: int, send_empty: bool = True) -> bool:
        """Send `to` what it misses (entries, or a snapshot if they are compacted)."""
        pr = self.prs.progress[to]
        if pr.is_paused():
            return False
        prev = pr.next - 1
        log_term = self.log.term(prev)
        ents = None
        if log_term is not None:
            try:
                ents = self.log.entries_from(pr.next, self.max_msg_size)
            except CompactedError:
                pass
        if ents is None:
            snap = self.log.snapshot()
            pr.become_snapshot(snap.metadata.index)
            self._send(M.MsgSnap, to, snapshot=snap)
            return True
        if not ents and not send_empty:
            return False
        self._send(M.MsgApp, to, index=prev, log_term=log_term, entries=ents, commit=self.log.committed)
        if ents:
            pr.sent_entries(ents[-1].index)
        elif pr.state is ProgressState.PROBE:
            pr.probe_sent = True
        return True

    def bcast_append(self) -> None:
        """Send every member what it misses; fill the in-flight window of those replicating."""
        for node in self.prs.progress:
            if node != self.id and self._send_append(node):
                while self._send_append(node, send_empty=False):
                    pass

    def bcast_heartbeat(self) -> None:
        ctx = self.reads.round_ctx
        committed = self.log.committed
        for node, pr in self.prs.progress.items():
            if node != self.id:
                self._send(M.MsgHeartbeat, node, commit=min(pr.match, committed), context=ctx)

    def _leader_transfer(self, target: int, pr: Progress) -> None:
        if pr.is_learner or target == self.id or target == self.lead_transferee:
            return
        self.election_elapsed = 0  # the transfer must finish within one election timeout
        self.lead_transferee = target
        if pr.match == self.log.last_index():
            self._send(M.MsgTimeoutNow, target)
        else:
            self._send_append(target)

    # ---- ReadIndex on the leader ----
    def _leader_read_index(self, m: Message) -> None:
        if self.prs.voters == {self.id}:
            self._answer_read(m, self.log.committed)
        elif not self._committed_in_term():
            self.pending_reads.append(m)  # our commit index may still lag the cluster's
        else:
            self.reads.waiting.append(m)
            if not self.reads.round_ctx:
                self._start_read_round()

    def _start_read_round(self) -> None:
        self.reads.start_round(self.id, self.log.committed)
        self.bcast_heartbeat()

    def _read_round_ack(self, ctx: bytes, node: int) -> None:
        done = self.reads.ack(ctx, node, self.prs.voters, self.prs.quorum())
        if done is None:
            return
        index, requests = done
        for m in requests:
            self._answer_read(m, index)
        if self.reads.waiting:
            self._start_read_round()

    def _answer_read(self, m: Message, index: int) -> None:
        if m.from_ in (0, self.id):
            self.read_states.append(ReadState(index, m.context))
        else:
            self._send(M.MsgReadIndexResp, m.from_, index=index, context=m.context)

    # ---- followers and candidates ----
    def _forward_to_leader(self, m: Message) -> None:
        """Pass a request on to the leader. The sender stays who asked (etcd-io/raft does the
        same): a ReadIndex answer must reach the member that asked, and a leader transfer names
        its target in ``from_``."""
        fwd = Message()
        fwd.CopyFrom(m)
        fwd.to = self.lead
        if not fwd.from_:
            fwd.from_ = self.id
        fwd.term = 0
        self.msgs.append(fwd)

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == M.MsgApp:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_append(m)
        elif t == M.MsgHeartbeat:
            self.election_elapsed = 0
            self.lead = m.from_
            self.log.commit_to(m.commit)
            self._send(M.MsgHeartbeatResp, m.from_, context=m.context)
        elif t == M.MsgSnap:
            self.election_elapsed = 0
            self.lead = m.from_
            self._handle_snapshot(m)
        elif t == M.MsgProp:
            if self.lead == 0:
                raise ProposalDropped("raft proposal dropped: no leader")
            self._forward_to_leader(m)
        elif t in (M.MsgTransferLeader, M.MsgReadIndex):
            if self.lead != 0:
                self._forward_to_leader(m)
        elif t == M.MsgTimeoutNow:
            self.hup(transfer=True)
        elif t == M.MsgReadIndexResp:
            self.read_states.append(ReadState(m.index, m.context))

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        pre = self.state is StateType.PRE_CANDIDATE
        if t == (M.MsgPreVoteResp if pre else M.MsgVoteResp):
            self.prs.record_vote(m.from_, not m.reject)
            result = self.prs.vote_result()
            if result is VoteResult.WON:
                self._won(pre)
            elif result is VoteResult.LOST:
                self.become_follower(self.term, 0)
        elif t in (M.MsgApp, M.MsgHeartbeat, M.MsgSnap):
            self.become_follower(m.term, m.from_)
            self._step_follower(m)
        elif t == M.MsgProp:
            raise ProposalDropped("raft proposal dropped: no leader")

    def _handle_append(self, m: Message) -> None:
        log = self.log
        if m.index < log.committed:
            self._send(M.MsgAppResp, m.from_, index=log.committed)
            return
        last = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last is not None:
            self._send(M.MsgAppResp, m.from_, index=last)
            return
        # Rejected: hint the leader at the largest index that might match, and its term.
        hint = log.find_conflict_by_term(min(m.index, log.last_index()), m.log_term)
        self._send(M.MsgAppResp, m.from_, index=m.index, reject=True, reject_hint=hint,
                   log_term=log.term(hint) or 0)

    def _handle_snapshot(self, m: Message) -> None:
        if self._restore(m.snapshot):
            self._send(M.MsgAppResp, m.from_, index=self.log.last_index())
        else:
            self._send(M.MsgAppResp, m.from_, index=self.log.committed)

    def _restore(self, snap: raft_pb2.Snapshot) -> bool:
        meta = snap.metadata
        if meta.index <= self.log.committed:
            return False
        if self.log.match_term(meta.index, meta.term):
            self.log.commit_to(meta.index)  # we have those entries: just fast-forward the commit
            return False
        self.log.restore(snap)
        self.prs.set_conf(meta.conf_state, self.log.last_index() + 1)
        return True

    # ---- membership ----
    def apply_conf_change(self, cc: raft_pb2.ConfChange) -> raft_pb2.ConfState:
        prs = self.prs
        node = cc.node_id
        nxt = self.log.last_index() + 1
        if cc.type in (M.ConfChangeAddNode, M.ConfChangeAddLearnerNode):
            learner = cc.type == M.ConfChangeAddLearnerNode
            if not (learner and node in prs.voters):  # a voter is never demoted
                (prs.learners if learner else prs.voters).add(node)
                (prs.voters if learner else prs.learners).discard(node)
                pr = prs.progress.get(node)
                if pr is None:
                    pr = prs.progress[node] = Progress(nxt, prs.max_inflight)
                    pr.recent_active = True  # a newcomer gets one election timeout to answer
                pr.is_learner = learner
        elif cc.type == M.ConfChangeRemoveNode:
            prs.voters.discard(node)
            prs.learners.discard(node)
            prs.progress.pop(node, None)
        if self.state is StateType.LEADER:
            if self.lead_transferee not in prs.progress:
                self.lead_transferee = 0
            if self._maybe_commit():  # the quorum may have shrunk
                self.bcast_append()
            else:
                for n in prs.progress:
                    if n != self.id and prs.progress[n].match == 0:
                        self._send_append(n)
            if self.id not in prs.voters:
                self._hand_off()
        return prs.conf_state()

    def _hand_off(self) -> None:
        """A leader removed from the voters steps down by handing leadership to the most
        up-to-date voter. Stepping down at once could leave every remaining voter with a shorter
        log than ours (we may hold entries appended after our removal) and none could win."""
        prs = self.prs
        if not prs.voters:
            return
        target = max(sorted(prs.voters), key=lambda v: prs.progress[v].match)
        self._leader_transfer(target, prs.progress[target])
