"""ReadIndex on the leader: linearizable reads confirmed by heartbeat rounds.

A read that arrives while no round is in flight starts one: it remembers the commit index and
sends a heartbeat carrying the round's context to every member. Reads that arrive while a round
is in flight wait for the next round (the leadership check must happen after the read arrived),
which starts as soon as the current one is confirmed — so one round answers every read that was
waiting when it started. Regular heartbeats repeat the in-flight round's context, so a round
whose heartbeats were lost completes with the next heartbeat.
"""
from __future__ import annotations

from pyetcd.proto.raftpb import raft_pb2


class ReadRounds:
    def __init__(self) -> None:
        self._next_round = 1
        self.waiting: list[raft_pb2.Message] = []     # MsgReadIndex not yet in a round
        self.round_ctx = b""                          # the in-flight round ("" when none)
        self.round_index = 0
        self.round_requests: list[raft_pb2.Message] = []
        self.round_acks: set[int] = set()

    def reset(self) -> None:
        """Leadership changed: the waiting reads are dropped (their requesters time out)."""
        self.waiting = []
        self.round_ctx = b""
        self.round_requests = []
        self.round_acks = set()

    def start_round(self, self_id: int, commit_index: int) -> bytes:
        """Put every waiting read into a new round; returns the round's heartbeat context."""
        self.round_ctx = b"r%d" % self._next_round
        self._next_round += 1
        self.round_index = commit_index
        self.round_requests, self.waiting = self.waiting, []
        self.round_acks = {self_id}
        return self.round_ctx

    def ack(self, ctx: bytes, node: int, voters: set[int], quorum: int
            ) -> tuple[int, list[raft_pb2.Message]] | None:
        """A heartbeat answer for round ctx; returns (index, reads) once a quorum confirmed it."""
        if not ctx or ctx != self.round_ctx:
            return None
        self.round_acks.add(node)
        if len(self.round_acks & voters) < quorum:
            return None
        done = (self.round_index, self.round_requests)
        self.round_ctx = b""
        self.round_requests = []
        return done
