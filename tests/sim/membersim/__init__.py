"""Whole-member deterministic simulation: real etcd members, a simulated world, one seed.

One to five real members — ``EtcdServer`` with its RaftNode, WAL, LMDB backend, apply, snapshot
send and install, membership — run unchanged in one process, on one asyncio loop whose clock
is virtual. What the member takes from the world comes through its seams, and the simulation
stands in for each: ``pyetcd.server.platform.Platform`` (fs, rng, wall clock, the peer
transport, ``fetch_cluster``, ``call_member``, ``fatal``) and the event loop itself (time,
``asyncio.to_thread``). Everything random is drawn from streams derived from the seed, so a
seed replays exactly: ``PYETCD_SIM_SEED=N pytest tests/sim/test_member_sim.py -s`` or
``python tests/sim/run.py --member --seed N -v`` (the trace of the whole run as it goes).

The pieces, one module each:

  vloop.py       the virtual-time event loop: jumps to the next timer when idle; runs blocking
                 work (``to_thread``) inline after a seeded disk delay (on a slow disk, work that
                 synced takes long); tags every callback with its process
  process.py     a simulated OS process (one run of a member): SIGKILL freezes its tasks and
                 drops its callbacks (no ``finally`` of it runs), SIGSTOP/SIGCONT defer them
  network.py     hosts, links, partitions (asymmetric), black holes (a link that looks up and
                 carries nothing), drops, duplicates, reordering, delays past the election
                 timeout, calls into another process
  transport.py   PeerTransport's interface over that network, snapshot streams included (a slow
                 stale stream can finish after a newer one); the real handshake's refusals
  platform.py    the member's Platform: fetch_cluster, call_member, the virtual wall clock
  disk.py        what survives a power loss: fsynced file contents, fsync_dir'ed entries,
                 page by page for LMDB's data file; hard links keep tracked inodes alive
  simfs.py       the member's FileSystem: counts I/O steps, crashes before/after a chosen one,
                 tears a write, fails a step with EIO/ENOSPC, fails cross-volume renames (EXDEV)
  member.py      one machine: its data dir, disk, current process and EtcdServer
  cluster.py     the machines, founders and added ones
  workload.py    KV clients: put, delete, compare-and-swap txn (Kubernetes' update), a txn
                 writing several keys at one revision, linearizable and serializable range,
                 compact — every write with a unique token
  watchstream.py a Watch stream to a member's WatchServer over the network: FIFO, HTTP/2-like
                 flow control (a slow reader stops the handler, whose queue then fills), reset
                 when the member dies, the handler's errors (no leader) reach the client
  watchclient.py watch clients: streams on any member (some requiring a leader, some read
                 slowly), watchers on keys, ranges and prefixes from now, past, compacted and
                 future revisions, prev_kv and filters now and then, canceled over time; a
                 watch whose stream ended resumes on some member after its last event; at the
                 end every watch still wanted is resumed and read to the log's end
  leases.py      a lease client: grants, puts with a lease, keep-alives, revokes (the rest
                 expire through the leaders)
  reconfig.py    member add (learner or voter, joining with ``--initial-cluster-state existing``
                 and an empty data dir), remove, promote; and at once the removal of a member
                 the fault injector wants gone again
  faults.py      the fault injector: kills (leader half of the time), pauses, power loss,
                 partitions, the leader cut off until just after the next election, a
                 follower that acknowledged a member's addition black-holed from the leader
                 (slow disk) until the member is removed and a snapshot taken, lossy spells,
                 slow snapshot streams, slow disks, disk fault plans (one of them: a crash at a
                 received snapshot's swap into the database file, armed too when a snapshot
                 coming in cuts the receiver's log short)
  options.py     run length, cluster sizes, timings, and the switches per fault kind
  recorder.py    wraps each server's ``apply`` and ``on_soft_state``: the agreed log
  reference.py   the agreed log replayed through a fresh Applier on a fresh Backend (leases
                 by a lessor that is never primary: they end only by the log's revokes)
  linearizability.py, checks.py, watchcheck.py   the checks below
  simulation.py  one seed from start to end; ``run_seed``
  planted.py     defects of issue 6 put back (``run.py --member --plant NAME``), to show the
                 checks catch them

Checked (the invariant names a failure reports):

  while running   log-agreement (every member applies the same entry at each index),
                  apply-order, election-safety (one leader per term, by every member's view),
                  log-terms (the log a member starts from: terms never go down),
                  conf-mismatch (after each apply, Raft's voters and learners are the member
                  list's, unless a snapshot Raft accepted waits to be installed)
  after healing   liveness (everyone restarted and converged on the leader's commit index),
                  log-gap, member-stopped (a fatal stop or failed start no injected fault
                  explains), escaped-error (an exception out of member code),
                  the history by log order and revision: lost-write, failed-write-applied,
                  duplicate-apply, response-mismatch and response-term (against the reference at
                  the write's entry), real-time-order, stale-read, read-from-future,
                  read-mismatch, lost-reconfiguration; then across members: hash-mismatch
                  (HashKV at every shared revision), state-mismatch, members-mismatch;
                  per member: conf-mismatch (Raft's voters and learners are its member list);
                  every watch, across its resumes, against the reference's revisions:
                  watch-order, watch-duplicate, watch-gap, watch-stalled (not caught up at the
                  end), watch-mismatch (kind, key-value, prev_kv; filters), watch-atomic,
                  watch-compaction, watch-canceled

Two harness patches stand in for the kernel, not for a missing seam: ``lmdb.open`` is wrapped
so a process's LMDB environments close when it dies (world.py), and a process's open file
descriptors are closed by its FileSystem at death (simfs.py). A third scales a parameter: a
watch stream's queue holds ``Options.watch_queue`` responses (not 128), so that slow readers
fill it within a run. Findings in the member code are
written down in tests/sim/FINDINGS.md; fault kinds with open findings are left out by default
(options.OPEN_FINDINGS, ``--with KIND`` to run them).

Not simulated: TLS, the client port's gRPC/HTTP layer (clients call the server's methods and
the Watch handler), progress notifications, fragments (responses never reach
--max-request-bytes), auth (not built yet), client links cut (partitions are between
members), clock skew between members (one virtual clock),
a transport that loses a stream's queued messages on reconnect, disk corruption of synced
data (bit flips), and LMDB's own reads and writes failing (they bypass the FileSystem).
"""
from membersim.failure import SimFailure
from membersim.options import Faults, Options
from membersim.simulation import run_seed

__all__ = ["Faults", "Options", "SimFailure", "run_seed"]
