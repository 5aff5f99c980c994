"""What the leader knows about each member: Progress (match/next, replication state, in-flight
window) and the ProgressTracker (membership, votes, quorum arithmetic)."""
from __future__ import annotations

from collections import deque
from enum import Enum

from pyetcd.proto.raftpb import raft_pb2


class ProgressState(Enum):
    PROBE = "probe"          # next is a guess: one append at a time until a reply tells the match
    REPLICATE = "replicate"  # match is known: stream appends optimistically, up to the window
    SNAPSHOT = "snapshot"    # a snapshot is on its way: send nothing until it is reported


class Progress:
    __slots__ = ("match", "next", "state", "probe_sent", "pending_snapshot", "recent_active",
                 "is_learner", "inflights", "max_inflight")

    def __init__(self, next_index: int, max_inflight: int, is_learner: bool = False) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.recent_active = False
        self.is_learner = is_learner
        self.inflights: deque[int] = deque()  # last index of each unacknowledged append
        self.max_inflight = max_inflight

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflights.clear()

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """An acknowledgement up to index arrived; returns whether match moved."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def sent_entries(self, last_index: int) -> None:
        """An append ending at last_index was sent."""
        if self.state is ProgressState.REPLICATE:
            self.next = last_index + 1
            self.inflights.append(last_index)
        else:
            self.probe_sent = True

    def free_inflights(self, index: int) -> None:
        inflights = self.inflights
        while inflights and inflights[0] <= index:
            inflights.popleft()

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """An append after `rejected` was refused; back off. False if the rejection is stale."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return len(self.inflights) >= self.max_inflight
        return True

    def __repr__(self) -> str:
        return (f"Progress(match={self.match}, next={self.next}, {self.state.value}"
                f"{', learner' if self.is_learner else ''})")


class VoteResult(Enum):
    PENDING = 0
    WON = 1
    LOST = 2


class ProgressTracker:
    """Membership (voters, learners), a Progress per member, and the votes of an election."""

    def __init__(self, max_inflight: int) -> None:
        self.max_inflight = max_inflight
        self.voters: set[int] = set()
        self.learners: set[int] = set()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}

    def quorum(self) -> int:
        return len(self.voters) // 2 + 1

    def conf_state(self) -> raft_pb2.ConfState:
        return raft_pb2.ConfState(voters=sorted(self.voters), learners=sorted(self.learners))

    def set_conf(self, cs: raft_pb2.ConfState, next_index: int) -> None:
        self.voters = set(cs.voters)
        self.learners = set(cs.learners)
        self.progress = {}
        for node in self.voters | self.learners:
            self.progress[node] = Progress(next_index, self.max_inflight, node in self.learners)

    def committed(self) -> int:
        """The highest index a quorum of voters has (0 with no voters)."""
        if not self.voters:
            return 0
        matches = sorted((self.progress[v].match for v in self.voters), reverse=True)
        return matches[len(matches) // 2]

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, node: int, granted: bool) -> None:
        self.votes.setdefault(node, granted)

    def vote_result(self) -> VoteResult:
        granted = sum(1 for v in self.voters if self.votes.get(v) is True)
        rejected = sum(1 for v in self.voters if self.votes.get(v) is False)
        if granted >= self.quorum():
            return VoteResult.WON
        if len(self.voters) - rejected < self.quorum():
            return VoteResult.LOST
        return VoteResult.PENDING

    def quorum_active(self, self_id: int) -> bool:
        active = sum(1 for v in self.voters if v == self_id or self.progress[v].recent_active)
        return active >= self.quorum()
