"""Watches every member as it runs: what it applied, and whom it followed in which term.

The recorder wraps two methods of each EtcdServer instance, both part of RaftNode's
ReadyHandler: ``apply(entries)`` (committed entries handed to the state machine) and
``on_soft_state(soft)`` (a change of leader). It checks, as things happen:

  log-agreement      every member applies the same entry (term, type, bytes) at each index
  apply-order        within one process, applied indexes only go up
  election-safety    no two members name different leaders for the same term
  log-terms          a started member's Raft log (from its WAL) has terms that never go down,
                     none below its snapshot's, and a hard state term at least the last one
  conf-mismatch      after each apply, Raft's voters and learners are the member list's
                     (unless a snapshot Raft accepted is still to be installed: until then
                     Raft holds its configuration, the backend the old one)

and keeps the agreed log: index -> entry, what the reference replay runs (reference.py).
A violation is recorded, not raised: raising would unwind the member's own code.
"""
from __future__ import annotations

from pyetcd.proto.raftpb import raft_pb2

from membersim.failure import Finding
from membersim.process import Process
from membersim.trace import Trace


def conf_views(server) -> tuple[tuple[list[int], list[int]], tuple[list[int], list[int]]]:
    """(Raft's voters and learners, the member list's)."""
    conf = server.raft.node.raft.prs.conf_state()
    return (list(conf.voters), list(conf.learners)), (server.membership.voters(), server.membership.learners())


class Recorder:
    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.log: dict[int, raft_pb2.Entry] = {}
        self.applied_by: dict[int, str] = {}          # index -> the member that applied it first
        self.last_applied: dict[str, int] = {}        # member name -> its last applied index
        self.leaders: dict[int, tuple[int, str]] = {}  # term -> (leader ID, the member who saw it)
        self.violations: list[Finding] = []
        self._conf_mismatched: dict[str, bool] = {}  # process name -> reported already

    def violation(self, invariant: str, detail: str) -> None:
        v = Finding(invariant, detail, self.trace.loop.time())
        self.violations.append(v)
        self.trace(f"VIOLATION {v}")

    def watch(self, name: str, process: Process, server) -> None:
        apply, on_soft_state = server.apply, server.on_soft_state
        last = [0]  # the last index this process applied

        def recorded_apply(entries: list[raft_pb2.Entry]):
            result = apply(entries)
            self._applied(name, process, last, entries)
            if not server._stashed:
                raft, listed = conf_views(server)
                if raft != listed and not self._conf_mismatched.get(process.name):
                    self._conf_mismatched[process.name] = True
                    self.violation("conf-mismatch", f"{process.name} after applying {entries[-1].index}: "
                                   f"raft's voters and learners are {raft}, the member list's {listed}")
            return result

        def recorded_soft_state(soft):
            result = on_soft_state(soft)
            if soft.lead:
                self._led(name, server.raft.term, soft.lead)
            return result

        server.apply = recorded_apply
        server.on_soft_state = recorded_soft_state

    def _applied(self, name: str, process: Process, last: list[int], entries: list[raft_pb2.Entry]) -> None:
        if entries and entries[0].index <= last[0]:
            self.violation("apply-order", f"{process.name} applies {entries[0].index} after {last[0]}")
        log = self.log
        for e in entries:
            seen = log.get(e.index)
            if seen is None:
                log[e.index] = e
                self.applied_by[e.index] = name
            elif seen.term != e.term or seen.type != e.type or seen.data != e.data:
                self.violation("log-agreement", f"{name} applied {e.index}@{e.term} ({len(e.data)} bytes), "
                               f"{self.applied_by[e.index]} applied {seen.index}@{seen.term} "
                               f"({len(seen.data)} bytes) there")
        if entries:
            last[0] = entries[-1].index
            self.last_applied[name] = last[0]

    def started(self, process: Process, server) -> None:
        """A member came up from its data dir: check the log Raft starts from (the entries kept
        below the snapshot for slow followers included)."""
        storage = server.raft.storage
        snapshot = storage.snapshot().metadata
        previous = storage.term(storage.first_index() - 1)
        for index in range(storage.first_index(), storage.last_index() + 1):
            term = storage.term(index)
            if term < previous or (index > snapshot.index and term < snapshot.term):
                self.violation("log-terms", f"{process.name} starts with {index}@{term} after a term "
                               f"{max(previous, snapshot.term)} (snapshot {snapshot.index}@{snapshot.term})")
                return
            previous = term
        if server.raft.term < previous:
            self.violation("log-terms", f"{process.name} starts at term {server.raft.term}, "
                           f"its log has term {previous}")

    def _led(self, name: str, term: int, lead: int) -> None:
        known = self.leaders.setdefault(term, (lead, name))
        if known[0] != lead:
            self.violation("election-safety", f"term {term}: {name} follows {lead:x}, "
                           f"{known[1]} follows {known[0]:x}")
