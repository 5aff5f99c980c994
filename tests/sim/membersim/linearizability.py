"""The client history checked against the reference, by log order and revision.

etcd orders every write by its Raft index and every read by the store revision it saw, so
linearizability is exact to check once the agreed log is known (reference.py):

  lost-write            an acknowledged write has no entry in the log
  failed-write-applied  a write reported as definitely failed has one
  duplicate-apply       one write applied at two entries
  response-mismatch     an acknowledged response differs from the reference's at its entry
  response-term         ... or names another Raft term than its entry's
  real-time-order       a write acknowledged before another was invoked has the larger index
  stale-read            a linearizable read saw a revision older than a write acknowledged
                        before the read was invoked
  read-from-future      a read saw a write that was invoked only after the read returned
  read-mismatch         a read's result is not the reference state at the revision it names
  lost-reconfiguration  an acknowledged member add/remove/promote has no entry in the log
"""
from __future__ import annotations

import bisect
from itertools import accumulate

from google.protobuf.message import Message

from pyetcd import errors
from pyetcd.proto.etcdserverpb import raft_internal_pb2

from membersim.failure import Finding
from membersim.history import READS, WRITES, History, Op, Outcome
from membersim.reference import RefEntry, Reference


def check_history(history: History, ref: Reference) -> list[Finding]:
    findings: list[Finding] = []
    applied = _applied_ops(ref, findings)
    writes = history.of_kind(*WRITES)
    for op in writes:
        entry = applied.get(op.id)
        if op.outcome is Outcome.OK:
            if entry is None:
                findings.append(Finding("lost-write", f"{op} has no entry in the log", op.returned))
            else:
                findings += _compare_write(op, entry)
        # (a write whose apply failed, as the reference's did, is failed: a put with a lease gone)
        elif op.outcome is Outcome.FAILED and entry is not None and not isinstance(entry.response, errors.EtcdError):
            findings.append(Finding("failed-write-applied", f"{op} applied at {entry.index}", op.returned))

    acked = sorted(((op.returned, applied[op.id]) for op in writes
                    if op.outcome is Outcome.OK and op.id in applied), key=lambda pair: pair[0])
    ack_times = [t for t, _ in acked]
    max_index = list(accumulate((e.index for _, e in acked), max))
    max_rev = list(accumulate((e.rev_after for _, e in acked), max))
    for op in writes:
        entry = applied.get(op.id)
        k = bisect.bisect_left(ack_times, op.invoked)  # writes acknowledged before op was invoked
        if entry is not None and k and max_index[k - 1] > entry.index:
            findings.append(Finding("real-time-order", f"{op} applied at {entry.index}, but a write "
                                    f"acknowledged before it was invoked is at {max_index[k - 1]}", op.invoked))

    invoked = {op.id: op.invoked for op in history.ops}
    # per entry: when the write that changed the store there was invoked (-inf: no change)
    change_invoked = list(accumulate(
        (max((invoked[i] for i in e.op_ids if i in invoked), default=float("-inf")) if e.changed
         else float("-inf") for e in ref.entries), max))
    for op in history.of_kind(*READS):
        if op.outcome is not Outcome.OK:
            continue
        seen = op.response.header.revision
        if seen > ref.rev:
            findings.append(Finding("read-mismatch", f"{op} saw revision {seen}, the log only reaches {ref.rev}",
                                    op.returned))
            continue
        k = bisect.bisect_left(ack_times, op.invoked)
        if not op.request.serializable and k and max_rev[k - 1] > seen:
            findings.append(Finding("stale-read", f"{op} saw revision {seen}, but revision {max_rev[k - 1]} "
                                    "was acknowledged before it was invoked", op.returned))
        reached = ref.entry_at_revision(seen)
        if reached and change_invoked[reached - 1] > op.returned:
            findings.append(Finding("read-from-future", f"{op} saw revision {seen}, made by a write invoked "
                                    f"at {change_invoked[reached - 1]:.4f}", op.returned))
        expected = ref.range(op.request, op.request.revision or seen)
        if _range_result(expected) != _range_result(op.response):
            findings.append(Finding("read-mismatch", f"{op}: {_short(op.response)} != reference "
                                    f"{_short(expected)} at revision {op.request.revision or seen}", op.returned))
    return findings


MemberChange = raft_internal_pb2.MemberChange
_CHANGE_KINDS = {"member_add": (MemberChange.ADD, MemberChange.ADD_LEARNER), "member_remove": (MemberChange.REMOVE,),
                 "member_promote": (MemberChange.PROMOTE,)}


def check_reconfigurations(history: History, ref: Reference) -> list[Finding]:
    logged = {(e.request.member_change.kind, e.request.member_change.member.ID) for e in ref.entries
              if e.request is not None and not e.skipped and e.request.HasField("member_change")}
    return [Finding("lost-reconfiguration", f"{op} (member {op.note['member_id']:x}) has no entry in the log",
                    op.returned)
            for op in history.of_kind(*_CHANGE_KINDS) if op.outcome is Outcome.OK
            and not any((kind, op.note["member_id"]) in logged for kind in _CHANGE_KINDS[op.kind])]


def _applied_ops(ref: Reference, findings: list[Finding]) -> dict[int, RefEntry]:
    """Operation ID -> the entry that applied it."""
    applied: dict[int, RefEntry] = {}
    for e in ref.entries:
        if e.skipped:
            continue
        for op_id in e.op_ids:
            if op_id in applied:
                findings.append(Finding("duplicate-apply", f"op{op_id} applied at {applied[op_id].index} "
                                        f"and at {e.index}"))
            else:
                applied[op_id] = e
    return applied


def _compare_write(op: Op, entry: RefEntry) -> list[Finding]:
    expected = entry.response
    if isinstance(expected, errors.EtcdError) or expected is None:
        return [Finding("response-mismatch", f"{op} succeeded; the reference's apply at {entry.index} gave "
                        f"{expected!r}", op.returned)]
    findings = []
    if op.response.header.raft_term != entry.term:
        findings.append(Finding("response-term", f"{op} names term {op.response.header.raft_term}, its entry "
                                f"{entry.index} has term {entry.term}", op.returned))
    if _without_member_fields(op.response) != _without_member_fields(expected):
        findings.append(Finding("response-mismatch", f"{op} at entry {entry.index}: {_short(op.response)} != "
                                f"reference {_short(expected)}", op.returned))
    return findings


def _without_member_fields(resp: Message) -> bytes:
    """The response without what the answering member fills in (its IDs, its term)."""
    copy = type(resp)()
    copy.CopyFrom(resp)
    copy.header.cluster_id = copy.header.member_id = copy.header.raft_term = 0
    return copy.SerializeToString(deterministic=True)


def _range_result(resp) -> tuple:
    return [kv.SerializeToString(deterministic=True) for kv in resp.kvs], resp.count, resp.more


def _short(resp: Message) -> str:
    return " ".join(str(resp).split())[:300]
