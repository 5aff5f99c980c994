"""pyetcd.raft — a sans-I/O Raft: no sockets, files, clocks, threads or asyncio (DESIGN.md §2).

Modules: storage (MemoryStorage), log (RaftLog), tracker (Progress, quorum), readindex
(ReadIndex rounds), raft (the state machine), rawnode (RawNode, Ready: the server's handle).

Starting a member
-----------------
    storage = MemoryStorage()                      # filled from the snapshot file + WAL:
    storage.apply_snapshot(snap)                   #   the latest snapshot (with its ConfState)
    storage.append(entries_after_snap)             #   the WAL's entries
    storage.set_hard_state(hs)                     #   the WAL's last HardState
    node = RawNode(Config(id=member_id, storage=storage, rng=random.Random(seed),
                          election_tick=10, heartbeat_tick=1))

A brand-new cluster: every initial member starts from the same bootstrap snapshot at index 1,
term 1, whose metadata.conf_state lists the initial voters (data: the empty state machine), and
HardState(term=1, commit=1). A member joining an existing cluster starts with an empty storage
(no conf state: it never campaigns) and learns the log, or a snapshot, from the leader once the
leader has applied the ConfChange that adds it. Member IDs are never reused.

Config.applied: leave it 0 (= the snapshot's index). Raft then hands out again every committed
entry after the snapshot; the server skips re-applying data it already holds (its applied index
is in LMDB) but MUST still call apply_conf_change() for every ConfChange entry handed out: Raft's
membership is rebuilt from the snapshot's ConfState plus those calls.

Input (all synchronous, none does I/O)
---------------------------------------
  tick()                       every heartbeat interval (etcd: 100 ms)
  step(msg)                    every raftpb.Message received from a peer (any order, duplicates ok)
  propose(data) / propose_batch([data, ...])
                               raises ProposalDropped when no leader is known, a leader transfer
                               runs, or this member was removed: fail the request (etcd's errors).
                               A follower forwards proposals to the leader; if the leader changes
                               they may be lost: the server times such requests out.
  propose_conf_change(ConfChange)
                               one at a time: a leader raises ProposalDropped while an earlier one
                               is not yet applied (a forwarded one turns into an empty entry).
                               AddNode on a learner promotes it; a voter cannot become a learner.
  apply_conf_change(cc) -> ConfState
                               when the ConfChange entry is applied (not when proposed). Keep the
                               returned ConfState: snapshots created later must carry it.
  read_index(ctx: bytes)       linearizable read: later a ReadState(index, ctx) comes in a Ready;
                               serve the read once the applied index >= index. A follower asks the
                               leader; with no leader (or on a leader change) no answer ever comes:
                               time out. Batch waiting reads into one call if you like; Raft also
                               answers every read waiting with one heartbeat round.
  transfer_leader(target)      the leader catches target up, then sends it MsgTimeoutNow; aborted
                               after an election timeout. Proposals are refused meanwhile.
  campaign()                   start an election now (pre-vote first when enabled).
  report_unreachable(id)       the transport could not deliver to id.
  report_snapshot(id, ok)      REQUIRED for every MsgSnap the transport sends (ok: fully delivered;
                               not ok: failed) — until then the leader sends that member nothing.
  status() -> Status           id, term, vote, commit, applied, lead, state, lead_transferee and,
                               on the leader, a copy of every Progress (match/next/state).

Output: Ready
-------------
  if node.has_ready():
      rd = node.ready()        # at most one outstanding: advance() it before the next ready()
  Fields:
    soft_state        SoftState(lead, state) when the leader or this member's role changed, else None
    hard_state        HardState(term, vote, commit) when any changed, else None
    entries           entries to append to the log (they may overwrite a suffix: storage.append
                      and the WAL replace everything from entries[0].index on)
    snapshot          a snapshot received from the leader, else None
    committed_entries entries to apply, in index order (EntryNormal with empty data: the leader's
                      no-op at the start of each term; EntryConfChange: data is a ConfChange)
    messages          raftpb.Message to send to m.to
    read_states       [ReadState(index, request_ctx)]
    must_sync         entries, snapshot, term or vote changed: fsync before sending messages

The server's obligations, in this order, for each Ready:
  1. persist: snapshot (file + WAL marker, storage.apply_snapshot), then entries and hard_state
     (WAL, fsync when must_sync), then storage.append(entries), storage.set_hard_state(hard_state)
  2. only then send messages (a vote or an append acknowledgement promises durable state); a
     MsgSnap carries the snapshot's data (stream it); report its outcome with report_snapshot
  3. install the snapshot into the state machine, then apply committed_entries in order (calling
     apply_conf_change for conf changes)
  4. answer read_states once applied >= index
  5. node.advance(rd)
tick/step/propose may be called between ready() and advance(): their output lands in the next
Ready. Log compaction: storage.create_snapshot(applied, conf_state, data) then
storage.compact(index <= applied) — keep some entries behind so slow followers get entries, not
snapshots.

A leader that applies its own removal stops taking proposals and hands leadership to the most
up-to-date voter (it may hold entries no remaining voter has); stop a removed member only once it
is no longer leader.
"""
from pyetcd.raft.raft import CAMPAIGN_TRANSFER, Config, ProposalDropped, ReadState, StateType
from pyetcd.raft.rawnode import RawNode, Ready, SoftState, Status
from pyetcd.raft.storage import (CompactedError, MemoryStorage, SnapshotOutOfDateError,
                                 StorageError, UnavailableError)
from pyetcd.raft.tracker import Progress, ProgressState

__all__ = [
    "CAMPAIGN_TRANSFER", "CompactedError", "Config", "MemoryStorage", "Progress", "ProgressState",
    "ProposalDropped", "RawNode", "ReadState", "Ready", "SnapshotOutOfDateError", "SoftState",
    "StateType", "Status", "StorageError", "UnavailableError",
]
