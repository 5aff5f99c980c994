"""The checks after a run, once every fault is healed and the members converged.

  (recorder.py, while running)  log-agreement, apply-order, election-safety
  log-gap             an index below the last applied one that no member ever applied
  member-stopped      a member stopped (fatal, or could not start) with no injected fault to blame
  escaped-error       an exception escaped a member's code (a callback, a task nobody awaited)
  (linearizability.py)          the client history against the reference replay, and
                                acknowledged reconfigurations against the log
  hash-mismatch       members' HashKV differ at a revision they share
  state-mismatch      a member's keys differ from the reference's final state
  members-mismatch    members disagree on the member list
"""
from __future__ import annotations

from typing import Awaitable, Callable

from pyetcd.proto.etcdserverpb import rpc_pb2

from membersim.failure import Finding
from membersim.history import History
from membersim.linearizability import check_history, check_reconfigurations
from membersim.member import SimMember, caused_by_injection
from membersim.recorder import conf_views
from membersim.reference import Reference
from membersim.world import World

Ask = Callable[[SimMember, Callable], Awaitable]
EVERYTHING = rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0", serializable=True)
BOOT_INDEX = 1  # the founders' configuration is the snapshot at this index


def run_time_findings(world: World) -> list[Finding]:
    findings = list(world.recorder.violations)
    findings += [Finding("member-stopped", str(stop), stop.time) for stop in world.stops if not stop.expected]
    findings += [Finding("escaped-error", f"{e.process}: {e.what}: {e.exc!r}", e.time)
                 for e in world.trace.errors if not caused_by_injection(e.exc)]
    return findings


def log_gaps(log: dict) -> list[Finding]:
    missing = [i for i in range(BOOT_INDEX + 1, max(log, default=BOOT_INDEX) + 1) if i not in log]
    return [Finding("log-gap", f"no member applied the entries {missing[:20]}")] if missing else []


def check_history_against(world: World, history: History, path: str) -> tuple[list[Finding], Reference]:
    ref = Reference(path, world.recorder.log, BOOT_INDEX + 1)
    return check_history(history, ref) + check_reconfigurations(history, ref), ref


async def check_members(members: list[SimMember], ref: Reference, ask: Ask) -> list[Finding]:
    """``ask(member, method)`` calls ``method(server)`` on that member (over the network)."""
    findings: list[Finding] = []
    expected_state = _kvs(ref.range(EVERYTHING, ref.rev))
    hashes: dict[str, dict[int, int]] = {}
    member_lists = {}
    for m in members:
        state = await ask(m, lambda server: server.range(EVERYTHING))
        if _kvs(state) != expected_state:
            findings.append(Finding("state-mismatch", f"{m.name} at revision {state.header.revision} holds "
                                    f"{len(state.kvs)} keys, the reference at {ref.rev} {len(expected_state)}: "
                                    f"{_diff(_kvs(state), expected_state)}"))
        hashes[m.name] = await _hashes(m, ask)
        listed = await ask(m, lambda server: server.member_list(rpc_pb2.MemberListRequest()))
        member_lists[m.name] = sorted((x.ID, x.isLearner, tuple(x.peerURLs)) for x in listed.members)
        findings += await _check_conf_state(m, ask)
    names = list(hashes)
    for other in names[1:]:
        a, b = hashes[names[0]], hashes[other]
        differ = [r for r in sorted(a.keys() & b.keys()) if a[r] != b[r]]
        if differ:
            findings.append(Finding("hash-mismatch", f"{names[0]} and {other} differ at revisions {differ[:10]}"))
        if member_lists[other] != member_lists[names[0]]:
            findings.append(Finding("members-mismatch", f"{names[0]}: {member_lists[names[0]]}, "
                                    f"{other}: {member_lists[other]}"))
    return findings


async def _check_conf_state(member: SimMember, ask: Ask) -> list[Finding]:
    """Raft's configuration is the member list's (once everything committed is applied)."""
    async def both(server):
        return conf_views(server)
    raft, listed = await ask(member, both)
    if raft == listed:
        return []
    return [Finding("conf-mismatch", f"{member.name}: raft's voters and learners are {raft}, "
                    f"the member list's {listed}")]


async def _hashes(member: SimMember, ask: Ask) -> dict[int, int]:
    """HashKV at every revision from the compacted one to the current one (one call that asks
    the member's server for each revision)."""
    async def every_revision(server) -> dict[int, int]:
        latest = await server.hash_kv(rpc_pb2.HashKVRequest(revision=0))
        return {rev: (await server.hash_kv(rpc_pb2.HashKVRequest(revision=rev))).hash
                for rev in range(max(1, latest.compact_revision), latest.header.revision + 1)}
    return await ask(member, every_revision)


def _kvs(resp: rpc_pb2.RangeResponse) -> dict[bytes, tuple]:
    return {kv.key: (kv.value, kv.create_revision, kv.mod_revision, kv.version) for kv in resp.kvs}


def _diff(have: dict, want: dict) -> str:
    keys = sorted(k for k in have.keys() | want.keys() if have.get(k) != want.get(k))
    return "; ".join(f"{k!r}: {have.get(k)} vs {want.get(k)}" for k in keys[:5])
