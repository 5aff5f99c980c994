"""A deterministic Raft cluster simulation: one seed drives everything, so a seed replays a run.

Members are RawNodes over a simulated network (drops, delays, reorders, duplicates,
partitions) on a virtual clock. A member's durable state is its MemoryStorage: it changes only
when the member handles a Ready (persist, then send, then apply), which happens after a random
delay — a crash loses the Ready not yet handled and all volatile state, and a restart rebuilds
the member from its storage, as the server does from its WAL. Membership changes, leader
transfers, ReadIndex reads and campaigns are injected at random.

Checked after every step (SimFailure names the invariant):
  election-safety       at most one leader per term
  log-matching          an (index, term) names one entry, preceded by one (index-1, term)
  leader-completeness   every leader holds every entry known to be committed
  state-machine-safety  members apply the same entry at each index (a chained CRC per index)
  read-linearizable     a ReadIndex answer covers every write applied before the read was issued
  liveness              with faults healed, a leader emerges and a proposal applies in time
  crash                 Raft raised an exception
"""
from __future__ import annotations

import bisect
import heapq
import random
import zlib
from dataclasses import dataclass

from pyetcd.proto.raftpb import raft_pb2 as M
from pyetcd.raft import CompactedError, Config, MemoryStorage, ProposalDropped, RawNode, StateType

MAX_IDS = 7
SUBSTEPS = 3            # network/disk steps per tick
ELECTION_TICK = 10
HEARTBEAT_TICK = 2
LIVENESS_TICKS = 40 * ELECTION_TICK
P_NEW_LEADER_FAILS = 0.5           # a leader is cut off or crashes as soon as it is elected
P_LEADER_FAILS_AFTER_APPLY = 0.5   # ... or right after it applied (acknowledged) entries


class SimFailure(Exception):
    def __init__(self, seed: int, invariant: str, detail: str, time: int) -> None:
        super().__init__(f"seed={seed} invariant={invariant} at t={time}: {detail}")
        self.seed, self.invariant, self.detail, self.time = seed, invariant, detail, time


def chain(h: int, e: M.Entry) -> int:
    return zlib.crc32(e.data, zlib.crc32(b"%d:%d:%d|" % (e.index, e.term, e.type), h))


@dataclass
class Options:
    fault_ticks: int = 300
    max_members: int = 5
    verbose: bool = False


class SimNode:
    def __init__(self, sim: Simulation, node_id: int, storage: MemoryStorage) -> None:
        self.sim, self.id, self.storage = sim, node_id, storage
        self.node: RawNode | None = None
        self.restarts = 0
        self.next_disk_time = 0

    # ---- lifecycle ----
    def start(self) -> None:
        self.restarts += 1
        cfg = Config(id=self.id, storage=self.storage, rng=random.Random(self.sim.rng.getrandbits(32)),
                     election_tick=ELECTION_TICK, heartbeat_tick=HEARTBEAT_TICK,
                     max_size_per_msg=self.sim.rng.choice([1, 64, 64, 1 << 20]),
                     max_inflight_msgs=self.sim.rng.choice([1, 4, 256]),
                     pre_vote=self.sim.pre_vote, check_quorum=self.sim.check_quorum)
        self.node = RawNode(cfg)
        snap = self.storage.snapshot()
        self.applied, self.hash = self.sim.parse_snapshot(snap.data)
        self.conf_state = snap.metadata.conf_state

    def crash(self) -> None:
        self.node = None

    @property
    def up(self) -> bool:
        return self.node is not None

    # ---- the server's Ready loop, done right ----
    def handle_ready(self) -> None:
        node, st, sim = self.node, self.storage, self.sim
        rd = node.ready()
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
        if rd.entries:
            st.append(rd.entries)
            sim.check_log_matching(self, rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
        for m in rd.messages:
            sim.net.send(m)
        if rd.snapshot is not None:
            self.install_snapshot(rd.snapshot)
        for e in rd.committed_entries:
            self.apply(e)
        for rs in rd.read_states:
            sim.check_read(self, rs.request_ctx, rs.index)
        node.advance(rd)
        self.maybe_compact()
        if rd.committed_entries and node.raft.state is StateType.LEADER:
            sim.on_leader_applied(self)

    def install_snapshot(self, snap: M.Snapshot) -> None:
        index, h = self.sim.parse_snapshot(snap.data)
        self.sim.check_applied(self, index, snap.metadata.term, h)
        self.applied, self.hash = index, h
        self.conf_state = snap.metadata.conf_state

    def apply(self, e: M.Entry) -> None:
        if e.index != self.applied + 1:
            self.sim.fail("state-machine-safety", f"node {self.id} applies {e.index} after {self.applied}")
        self.hash = chain(self.hash, e)
        self.applied = e.index
        self.sim.check_applied(self, e.index, e.term, self.hash)
        if e.type == M.EntryConfChange:
            cc = M.ConfChange.FromString(e.data)
            self.conf_state = self.node.apply_conf_change(cc)
            self.sim.conf_applied(self, e.index, self.conf_state)
        elif e.data:
            self.sim.write_applied(e.data)

    def maybe_compact(self) -> None:
        st = self.storage
        if self.applied - st.first_index() > self.sim.compact_every and self.applied <= st.last_index():
            st.create_snapshot(self.applied, self.conf_state, self.sim.snapshot_data(self.applied, self.hash))
            keep = self.sim.rng.randrange(4)
            if self.applied - keep >= st.first_index():
                st.compact(self.applied - keep)


class Network:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.queue: list[tuple[int, int, M.Message]] = []
        self.seq = 0
        self.drop = 0.0
        self.dup = 0.0
        self.max_delay = SUBSTEPS
        self.group: dict[int, int] = {}  # partition: node -> side (absent: side 0)

    def connected(self, a: int, b: int) -> bool:
        return self.group.get(a, 0) == self.group.get(b, 0)

    def send(self, m: M.Message) -> None:
        rng = self.sim.rng
        m = M.Message.FromString(m.SerializeToString())  # what a real transport does
        copies = 2 if self.dup and rng.random() < self.dup else 1
        for _ in range(copies):
            if not self.connected(m.from_, m.to) or (self.drop and rng.random() < self.drop):
                self.failed(m)
                continue
            self.seq += 1
            heapq.heappush(self.queue, (self.sim.now + rng.randint(1, self.max_delay), self.seq, m))

    def failed(self, m: M.Message) -> None:
        if m.type == M.MsgSnap:  # a real transport knows a snapshot stream failed
            sender = self.sim.nodes.get(m.from_)
            if sender is not None and sender.up:
                sender.node.report_snapshot(m.to, False)

    def deliver_due(self) -> None:
        sim, queue = self.sim, self.queue
        while queue and queue[0][0] <= sim.now:
            _, _, m = heapq.heappop(queue)
            dest = sim.nodes.get(m.to)
            if dest is None or not dest.up or not self.connected(m.from_, m.to):
                self.failed(m)
                continue
            dest.node.step(m)
            if m.type == M.MsgSnap:
                sender = sim.nodes.get(m.from_)
                if sender is not None and sender.up:
                    sender.node.report_snapshot(m.to, True)


class Simulation:
    def __init__(self, seed: int, opts: Options | None = None) -> None:
        self.seed = seed
        self.opts = opts or Options()
        self.rng = random.Random(seed)
        self.now = 0
        self.net = Network(self)
        self.compact_every = self.rng.choice([5, 20, 1000])
        self.disk_delay = self.rng.choice([0, 1, 3])
        self.pre_vote = self.rng.random() < 0.7
        self.check_quorum = self.rng.random() < 0.7
        self.canonical: dict[int, tuple[int, int]] = {}  # index -> (term, chained crc)
        self.max_applied = 0
        self.max_term = 1
        self.last_leader_term = 0
        self.faults_on = True
        self.commit_bounds: list[int] = []  # max term in existence when commit_marks[i] was applied
        self.commit_marks: list[int] = []
        self.leaders: dict[int, int] = {}                # term -> leader id
        self.entry_ids: dict[tuple[int, int], tuple[bytes, int | None]] = {}
        self.reads: dict[bytes, int] = {}                # read ctx -> applied floor at issue
        self.next_id = 0
        self.applied_writes: set[bytes] = set()
        self.snapshots: dict[bytes, tuple[int, int]] = {}
        self.removed: set[int] = set()
        n = self.rng.randint(1, self.opts.max_members)
        self.nodes: dict[int, SimNode] = {}
        boot = M.Snapshot(data=self.snapshot_data(1, 0), metadata=M.SnapshotMetadata(
            index=1, term=1, conf_state=M.ConfState(voters=list(range(1, n + 1)))))
        self.canonical[1] = (1, 0)
        for i in range(1, n + 1):
            st = MemoryStorage()
            st.apply_snapshot(boot)
            st.set_hard_state(M.HardState(term=1, commit=1))
            self.add_node(i, st)

    # ---- bookkeeping ----
    def log(self, msg: str) -> None:
        if self.opts.verbose:
            print(f"t={self.now:5d} {msg}")

    def fail(self, invariant: str, detail: str) -> None:
        raise SimFailure(self.seed, invariant, detail, self.now)

    def add_node(self, node_id: int, storage: MemoryStorage) -> SimNode:
        sn = self.nodes[node_id] = SimNode(self, node_id, storage)
        sn.start()
        return sn

    def uid(self, prefix: bytes) -> bytes:
        self.next_id += 1
        return b"%s%d" % (prefix, self.next_id)

    def snapshot_data(self, index: int, h: int) -> bytes:
        data = b"snap:%d:%d" % (index, h)
        self.snapshots[data] = (index, h)
        return data

    def parse_snapshot(self, data: bytes) -> tuple[int, int]:
        return self.snapshots[data] if data else (0, 0)

    def up_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.up]

    def leader(self) -> SimNode | None:
        best = None
        for n in self.up_nodes():
            r = n.node.raft
            if r.state is StateType.LEADER and (best is None or r.term > best.node.raft.term):
                best = n
        return best

    # ---- invariants ----
    def check_applied(self, node: SimNode, index: int, term: int, h: int) -> None:
        seen = self.canonical.setdefault(index, (term, h))
        if seen != (term, h):
            self.fail("state-machine-safety",
                      f"node {node.id} applied (term {term}, crc {h}) at {index}, another applied {seen}")
        if index > self.max_applied:
            self.max_applied = index
            self.max_term = max([self.max_term] + [n.node.raft.term for n in self.up_nodes()])
            self.commit_bounds.append(self.max_term)
            self.commit_marks.append(index)

    def check_log_matching(self, node: SimNode, entries: list[M.Entry]) -> None:
        st = node.storage
        for e in entries:
            try:
                prev = st.term(e.index - 1)
            except CompactedError:
                prev = None
            key = (e.index, e.term)
            ident = (e.data, e.type)
            seen = self.entry_ids.get(key)
            if seen is None:
                self.entry_ids[key] = (ident, prev)
            elif seen[0] != ident or (prev is not None and seen[1] is not None and seen[1] != prev):
                self.fail("log-matching", f"node {node.id} persisted {key} = {ident}/prev term {prev}, "
                          f"elsewhere {seen}")

    def check_leaders(self) -> None:
        for n in self.nodes.values():
            if n.node is None:
                continue
            r = n.node.raft
            if r.term > self.max_term:
                self.max_term = r.term
            if r.state is not StateType.LEADER:
                continue
            hs = n.storage.hard_state
            if hs.term != r.term or hs.vote != n.id:
                continue  # leadership not yet durable: a crash now would leave no trace of it
            known = self.leaders.setdefault(r.term, n.id)
            if known != n.id:
                self.fail("election-safety", f"term {r.term}: leaders {known} and {n.id}")
            if r.term > self.last_leader_term:
                self.last_leader_term = r.term
                self.log(f"node {n.id} leads term {r.term}")
                self.on_new_leader(n)
                if n.node is None:
                    continue
            # Entries known committed before this leader's term existed must be in its log.
            k = bisect.bisect_left(self.commit_bounds, r.term) - 1
            c = self.commit_marks[k] if k >= 0 else 0
            if c >= r.log.first_index():
                term = r.log.term(c)
                if term != self.canonical[c][0]:
                    self.fail("leader-completeness", f"leader {n.id} (term {r.term}) has term {term} at "
                              f"committed index {c}, committed term {self.canonical[c][0]}")

    def check_read(self, node: SimNode, ctx: bytes, index: int) -> None:
        floor = self.reads.get(ctx)
        if floor is None:
            self.fail("read-linearizable", f"node {node.id} got an answer to unknown read {ctx!r}")
        if index < floor:
            self.fail("read-linearizable", f"node {node.id}: read {ctx!r} got index {index}, but "
                      f"index {floor} was applied before it was issued")

    def conf_applied(self, node: SimNode, index: int, cs: M.ConfState) -> None:
        self.log(f"node {node.id} applied conf change at {index}: voters {list(cs.voters)} "
                 f"learners {list(cs.learners)}")

    def write_applied(self, data: bytes) -> None:
        self.applied_writes.add(data)

    # ---- the clock ----
    def substep(self) -> None:
        self.now += 1
        self.net.deliver_due()
        for n in self.nodes.values():
            if n.node is not None and n.next_disk_time <= self.now and n.node.has_ready():
                n.handle_ready()
                n.next_disk_time = self.now + self.rng.randint(0, self.disk_delay)
        self.check_leaders()

    def tick(self) -> None:
        for n in self.nodes.values():
            if n.node is not None:
                n.node.tick()
        for _ in range(SUBSTEPS):
            self.substep()

    # ---- faults and requests ----
    def inject(self) -> None:
        """At most one random fault or request per tick."""
        rng = self.rng
        r = rng.random()
        up = self.up_nodes()
        lead = self.leader()
        if not up:
            self.restart_one()
        elif r < 0.25:
            target = lead if lead is not None and rng.random() < 0.5 else rng.choice(up)
            self.propose(target, [self.uid(b"w") for _ in range(rng.randint(1, 3))])
        elif r < 0.32:
            self.read(rng.choice(up))
        elif r < 0.35:
            victim = lead if lead is not None and rng.random() < 0.5 else rng.choice(up)
            self.log(f"crash {victim.id}")
            victim.crash()
        elif r < 0.40:
            self.restart_one()
        elif r < 0.42:
            if lead is not None and rng.random() < 0.5:
                self.isolate(lead)
            else:
                self.net.group = {i: rng.randrange(2) for i in self.nodes}
                self.log(f"partition {self.net.group}")
        elif r < 0.45:
            self.net.group = {}
        elif r < 0.47:
            self.net.drop = rng.choice([0.0, 0.0, 0.05, 0.2, 0.5])
            self.net.dup = rng.choice([0.0, 0.05, 0.2])
            self.net.max_delay = rng.choice([1, SUBSTEPS, 3 * SUBSTEPS])
        elif r < 0.50:
            self.conf_change()
        elif r < 0.52 and lead is not None:
            target = rng.choice(list(self.nodes))
            self.log(f"transfer leadership {lead.id} -> {target}")
            lead.node.transfer_leader(target)
        elif r < 0.53:
            rng.choice(up).node.campaign()

    def on_new_leader(self, n: SimNode) -> None:
        """Cut fresh leaders off now and then: the histories of Raft's Figure 8 need leaders whose
        first entries never leave them."""
        if self.faults_on and self.rng.random() < P_NEW_LEADER_FAILS:
            if self.rng.random() < 0.5:
                self.isolate(n)
            else:
                self.log(f"crash new leader {n.id}")
                n.crash()

    def on_leader_applied(self, n: SimNode) -> None:
        """Sometimes a leader fails right after it acknowledged writes: what it committed must
        survive it."""
        if self.faults_on and self.rng.random() < P_LEADER_FAILS_AFTER_APPLY:
            if self.rng.random() < 0.5:
                self.isolate(n)
            else:
                self.log(f"crash leader {n.id} after it applied")
                n.crash()

    def isolate(self, lead: SimNode) -> None:
        """Partition the leader with at most a minority of the others."""
        rng = self.rng
        minority = rng.sample(list(self.nodes), rng.randint(0, (len(self.nodes) - 1) // 2))
        self.net.group = {i: int(i == lead.id or i in minority) for i in self.nodes}
        self.log(f"partition {self.net.group} (isolating leader {lead.id})")

    def restart_one(self) -> None:
        down = [n for n in self.nodes.values() if not n.up]
        if down:
            n = self.rng.choice(down)
            self.log(f"restart {n.id}")
            n.start()

    def propose(self, n: SimNode, datas: list[bytes]) -> bool:
        try:
            n.node.propose_batch(datas)
            return True
        except ProposalDropped:
            return False

    def read(self, n: SimNode) -> None:
        ctx = self.uid(b"r")
        self.reads[ctx] = self.max_applied
        n.node.read_index(ctx)

    def conf_change(self) -> None:
        lead = self.leader()
        if lead is None:
            return
        rng = self.rng
        cs = lead.conf_state
        voters, learners = list(cs.voters), list(cs.learners)
        fresh = [i for i in range(1, MAX_IDS + 1) if i not in self.nodes]
        choices = []
        if fresh:
            choices += [(M.ConfChangeAddNode, fresh[0]), (M.ConfChangeAddLearnerNode, fresh[0])]
        choices += [(M.ConfChangeAddNode, i) for i in learners]
        if len(voters) > 1:
            choices += [(M.ConfChangeRemoveNode, i) for i in voters]
        choices += [(M.ConfChangeRemoveNode, i) for i in learners]
        if not choices:
            return
        kind, node_id = rng.choice(choices)
        if node_id not in self.nodes:
            self.add_node(node_id, MemoryStorage())  # a new member starts empty and learns the log
        self.log(f"propose {M.ConfChangeType.Name(kind)} {node_id} at leader {lead.id}")
        try:
            lead.node.propose_conf_change(M.ConfChange(type=kind, node_id=node_id))
        except ProposalDropped:
            pass

    # ---- a whole run ----
    def run(self) -> None:
        try:
            for _ in range(self.opts.fault_ticks):
                self.inject()
                self.tick()
            self.heal()
            self.check_liveness()
        except SimFailure:
            raise
        except Exception as exc:  # Raft itself broke (an assertion, a bug)
            import traceback
            self.fail("crash", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")

    def heal(self) -> None:
        self.faults_on = False
        self.net.group = {}
        self.net.drop = self.net.dup = 0.0
        self.net.max_delay = SUBSTEPS
        for n in self.nodes.values():
            if not n.up:
                n.start()
        self.log("healed")

    def check_liveness(self) -> None:
        marker = self.uid(b"live")
        proposed_term = None
        for _ in range(LIVENESS_TICKS):
            lead = self.leader()
            if lead is not None and proposed_term != lead.node.raft.term:
                if self.propose(lead, [marker]):
                    proposed_term = lead.node.raft.term
            self.tick()
            if marker in self.applied_writes:
                return
        lead = self.leader()
        states = {n.id: (n.node.raft.state.value, n.node.raft.term, n.node.raft.log.committed,
                         list(n.conf_state.voters)) for n in self.nodes.values()}
        self.fail("liveness", f"no proposal committed {LIVENESS_TICKS} ticks after healing "
                  f"(leader {lead.id if lead else None}); members {states}")


def run_seed(seed: int, opts: Options | None = None) -> None:
    Simulation(seed, opts).run()
