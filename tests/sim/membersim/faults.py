"""The fault injector: one random fault now and then, from the kinds Options.faults allows.

Process faults (kill, pause, power loss) pick the leader half of the time; a member that is
down (killed, crashed at a disk step, stopped by a fatal error, failed to start) is restarted
after a random downtime. Every process gets its own disk fault plan at start (``disk_faults``).
``heal()`` ends every fault that is still on; restarting the members that are down is the
simulation's job then.
"""
from __future__ import annotations

import asyncio
import os
import random

from pyetcd.proto.raftpb import raft_pb2
from pyetcd.storage.checkpoint import DATA_FILE

from membersim.cluster import Cluster
from membersim.member import SimMember
from membersim.options import Faults
from membersim.process import State
from membersim.simfs import ANY, FAILABLE, DiskFault, FaultKind

DOWNTIME = (0.1, 3.0)
PAUSE = (0.2, 3.0)
SLOW_DISK = (0.5, 4.0)
NETWORK_FAULT = (0.5, 5.0)  # how long a partition or a lossy spell lasts (unless replaced sooner)
INTENSITY = [0.5, 1, 1, 2, 4]  # per seed, times the mean interval between faults
P_PAUSE_SNAPSHOT_SENDER = 0.3  # a leader streaming a snapshot is paused (its stream lands late)
P_KILL_SNAPSHOT_RECEIVER = 0.3  # a member that just took a snapshot is killed soon after
# a member whose log holds entries above a snapshot coming in (a deposed leader's uncommitted
# tail) crashes as it installs it: the restart starts from the WAL marker, with no entry after it
# (defect 3's path)
P_CRASH_CUTTING_SNAPSHOT = 0.5
P_CUT_BURSTING_LEADER = 0.2  # a leader that a burst of writes is aimed at is cut off as it starts
# a follower that acknowledged a member's addition hears no more from the leader until the
# member is removed again and the leader has taken a snapshot since (then its disk is slow): the
# addition commits on it only as the snapshot that undoes it comes in (defect 7's path)
P_CUT_ACKING_FOLLOWER = 0.5
CUT_ACKING_FOLLOWER_FOR = 8.0  # at most
_ADDS = (raft_pb2.ConfChangeAddNode, raft_pb2.ConfChangeAddLearnerNode)
SOON = (0.0, 0.3)
# (operation, the highest occurrence to pick): how far into a process's life a disk fault lands
CRASH_POINTS = [(ANY, 600), ("fdatasync", 60), ("fsync", 20), ("write", 150), ("rename", 6),
                ("fsync_dir", 10), ("unlink", 10), ("open", 30), ("pwrite", 10)]
# a received snapshot's swap into the database file (the rename onto it: snapshot.swap_in): its
# WAL marker is written, the entries Raft appends next are not yet
SWAP = os.sep + os.path.join("member", "snap", "db", DATA_FILE)
P_CRASH_PLAN, P_SWAP_CRASH_PLAN, P_TORN_PLAN, P_ERROR_PLAN = 0.35, 0.15, 0.15, 0.1


class FaultInjector:
    def __init__(self, cluster: Cluster, rng: random.Random, faults: Faults, interval: float) -> None:
        self.cluster = cluster
        self.world = cluster.world
        self.rng = rng
        self.faults = faults
        self.interval = interval * rng.choice(INTENSITY)
        self.active = True
        self._restart_at: dict[str, float] = {}
        self._held: set | None = None  # a reactive cut that other network faults leave alone
        network = self.world.network
        if faults.pauses:
            network.on_snapshot_sending = self._snapshot_sending
        if faults.kills:
            network.on_snapshot_installed = self._snapshot_installed
        if faults.disk_crashes:
            network.on_snapshot_arriving = self._snapshot_arriving
        if faults.partitions:
            cluster.on_burst = self._burst_at
        if faults.partitions and faults.membership and faults.slow_disk:
            network.on_delivered = self._delivered

    # ---- disk fault plans ----------------------------------------------------------------------

    def disk_faults(self, member: SimMember) -> list[DiskFault]:
        if not self.active or not self._may_hit(member) or (member.runs == 0 and not self.faults.first_start_crashes):
            return []
        rng, f, plan = self.rng, self.faults, []
        if f.disk_crashes and rng.random() < P_CRASH_PLAN:
            op, most = rng.choice(CRASH_POINTS)
            kind = self._crash_kind()
            plan.append(DiskFault(op, rng.randint(1, most), kind))
        if f.disk_crashes and rng.random() < P_SWAP_CRASH_PLAN:
            kind = self._crash_kind()
            plan.append(DiskFault("rename", rng.randint(1, 2), kind, SWAP))
        if f.torn_writes and rng.random() < P_TORN_PLAN:
            plan.append(DiskFault("write", rng.randint(1, 150), FaultKind.TORN))
        if f.io_errors and rng.random() < P_ERROR_PLAN:
            kind = rng.choice([FaultKind.EIO, FaultKind.ENOSPC])
            plan.append(DiskFault(rng.choice(FAILABLE), rng.randint(1, 40), kind))
        return plan

    def _crash_kind(self) -> FaultKind:
        return self.rng.choice([FaultKind.CRASH_BEFORE, FaultKind.CRASH_AFTER])

    # ---- the loop ------------------------------------------------------------------------------

    async def run(self, until: float) -> None:
        loop = self.world.loop
        while loop.time() < until:
            await asyncio.sleep(self.rng.expovariate(1 / self.interval))
            self.restart_due()
            self.inject()

    def restart_due(self) -> None:
        now = self.world.loop.time()
        for member in self.cluster.live():
            if member.up or not member.runs:  # (a member not started yet is the reconfigurer's)
                continue
            at = self._restart_at.setdefault(member.name, now + self.rng.uniform(*DOWNTIME))
            if at <= now:
                del self._restart_at[member.name]
                self.cluster.start(member)

    def inject(self) -> None:
        f, rng = self.faults, self.rng
        net_free = self._network_free()
        actions = [a for a, on in [
            (self.kill, f.kills), (self.pause, f.pauses), (self.power_loss, f.power_loss),
            (self.partition, f.partitions and net_free), (self.isolate_leader, f.partitions and net_free),
            (self.heal_network, (f.partitions or f.lossy_network) and net_free),
            (self.lossy, f.lossy_network), (self.slow_snapshots, f.slow_snapshots),
            (self.slow_disk, f.slow_disk)] if on]
        if actions:
            rng.choice(actions)()

    def _network_free(self) -> bool:
        """Whether network faults may replace the partition in force (not a reactive cut)."""
        return self._held is None or self.world.network.black_holed is not self._held

    def _may_hit(self, member: SimMember) -> bool:
        """Whether the switches allow faults that end or restart this member's process now."""
        joining = member.cluster_flags.get("initial-cluster-state") == "existing" and \
            member.name not in self.world.recorder.last_applied
        return self.faults.restart_joining or not joining

    def _victim(self) -> SimMember | None:
        leader = self.cluster.leader()
        if leader is not None and self.rng.random() < 0.5:
            return leader
        up = [m for m in self.cluster.live() if m.up and self._may_hit(m)]
        return self.rng.choice(up) if up else None

    def kill(self) -> None:
        victim = self._victim()
        if victim is not None:
            victim.kill("injected")

    def _snapshot_sending(self, host: str) -> None:
        if self.active and self.rng.random() < P_PAUSE_SNAPSHOT_SENDER:
            self._later(SOON, lambda: self._pause(self.cluster.members[host]))

    def _snapshot_installed(self, host: str) -> None:
        member = self.cluster.members[host]
        if self.active and self.rng.random() < P_KILL_SNAPSHOT_RECEIVER and self._may_hit(member):
            process = member.process
            self._later(SOON, lambda: self.active and member.process is process
                        and member.kill("injected after a snapshot"))

    def _snapshot_arriving(self, host: str, message: bytes) -> None:
        member = self.cluster.members[host]
        if not self.active or not member.serving or not self._may_hit(member):
            return
        index = raft_pb2.Message.FromString(message).snapshot.metadata.index
        if member.server.raft.storage.last_index() > index and self.rng.random() < P_CRASH_CUTTING_SNAPSHOT:
            member.fs.faults.append(DiskFault("rename", 1, self._crash_kind(), SWAP))

    def _burst_at(self, member: SimMember) -> None:
        if self.active and member.serving and member.server.is_leader and self._network_free() and \
                self.rng.random() < P_CUT_BURSTING_LEADER:
            self.isolate_leader()

    def _delivered(self, receiver: str, sender: str, data: bytes) -> None:
        network = self.world.network
        if not self.active or receiver in network.after_ack:
            return
        m = raft_pb2.Message.FromString(data)
        if m.type != raft_pb2.MsgApp:
            return
        for e in m.entries:
            if e.type == raft_pb2.EntryConfChange:
                cc = raft_pb2.ConfChange.FromString(e.data)
                if cc.type in _ADDS and self.rng.random() < P_CUT_ACKING_FOLLOWER:
                    network.after_ack[receiver] = (e.index, lambda: self._cut_after_ack(receiver, sender, cc.node_id))
                return

    def _cut_after_ack(self, follower: str, leader: str, added: int) -> None:
        member = self.cluster.members[follower]
        if not self.active or not member.up:
            return
        holed = self._held = self.world.network.black_holed = {(leader, follower)}
        self.world.trace(f"partition: black hole {sorted(holed)}")
        self.cluster.unwanted[added] = 10
        slow = member.process.name
        self.world.slow_disk.add(slow)
        self.world.trace(f"slow disk on {slow}")
        self.world.loop.create_task(self._heal_after_undone(added, holed, slow))

    async def _heal_after_undone(self, added: int, holed: set, slow: str) -> None:
        net, loop = self.world.network, self.world.loop
        deadline, removed_at = loop.time() + CUT_ACKING_FOLLOWER_FOR, None
        while net.black_holed is holed and loop.time() < deadline:
            leader = self.cluster.leader()
            if leader is not None and added not in leader.server.membership.members:
                if removed_at is None:
                    removed_at = leader.server.applied_index
                elif leader.server.raft.storage.snapshot().metadata.index > removed_at:
                    break
            await asyncio.sleep(0.05)
        if net.black_holed is holed:
            net.black_holed = set()
            self.world.trace("black hole healed")
        self._held = None
        self._later(SLOW_DISK, lambda: self.world.slow_disk.discard(slow))

    def power_loss(self) -> None:
        victim = self._victim()
        if victim is not None:
            victim.power_loss(self.faults.lose_unsynced_dirs)

    def pause(self) -> None:
        victim = self._victim()
        if victim is not None:
            self._pause(victim)

    def _pause(self, victim: SimMember) -> None:
        if not self.active or not victim.up or victim.process.state is not State.RUNNING:
            return
        victim.pause()
        process = victim.process
        self._later(PAUSE, lambda: victim.resume() if victim.process is process else None)

    def partition(self) -> None:
        rng = self.rng
        hosts = [m.name for m in self.cluster.live()]
        leader = self.cluster.leader()
        blocked = set()
        if leader is not None and rng.random() < 0.5:
            # the leader and others on a minority side (their logs get its uncommitted tail);
            # maybe only one direction is cut
            others = [h for h in hosts if h != leader.name]
            side = {leader.name, *rng.sample(others, rng.randint(0, max(0, (len(hosts) - 1) // 2 - 1)))}
            one_way = rng.random() < 0.3
            for a in side:
                for b in hosts:
                    if b not in side:
                        blocked.add((a, b))
                        if not one_way:
                            blocked.add((b, a))
        else:
            blocked = {(a, b) for a in hosts for b in hosts if a != b and rng.random() < 0.3}
        self._block(blocked)
        self._later(NETWORK_FAULT, lambda: self.world.network.blocked is blocked and self.heal_network())

    def isolate_leader(self) -> None:
        """The leader cut off alone, both ways, until soon after the others elect another (a
        flapping link): the deposed leader still holds what it appended alone, and a new leader
        that took a snapshot meanwhile sends it one below that uncommitted tail."""
        leader = self.cluster.leader()
        if leader is None:
            return
        hosts = [m.name for m in self.cluster.live() if m is not leader]
        blocked = {pair for h in hosts for pair in ((leader.name, h), (h, leader.name))}
        self._block(blocked)
        self.world.loop.create_task(self._heal_after_election(leader, blocked))

    def _block(self, blocked: set) -> None:
        self.world.network.blocked = blocked
        self.world.trace(f"partition: blocked {sorted(blocked)}")

    async def _heal_after_election(self, deposed: SimMember, blocked: set) -> None:
        net, loop = self.world.network, self.world.loop
        deadline = loop.time() + NETWORK_FAULT[1]
        while net.blocked is blocked and loop.time() < deadline:
            if any(m.server.is_leader for m in self.cluster.serving() if m is not deposed):
                await asyncio.sleep(self.rng.uniform(*SOON))
                break
            await asyncio.sleep(0.05)
        if net.blocked is blocked:
            self.heal_network()

    def _later(self, span: tuple[float, float], action) -> None:
        self.world.loop.call_later(self.rng.uniform(*span), action)

    def heal_network(self) -> None:
        self.world.network.heal()
        self.world.trace("network healed")

    def lossy(self) -> None:
        net, rng = self.world.network, self.rng
        net.drop = rng.choice([0.0, 0.0, 0.02, 0.1, 0.3])
        net.dup = rng.choice([0.0, 0.05, 0.2])
        net.long_delay = rng.choice([0.0, 0.01, 0.05])
        net.reorder = rng.random() < 0.5
        net.duplicate_proposals = self.faults.duplicate_proposals
        self.world.trace(f"network: drop={net.drop} dup={net.dup} long_delay={net.long_delay} reorder={net.reorder}")
        spell = (net.drop, net.dup, net.long_delay)
        self._later(NETWORK_FAULT, lambda: (net.drop, net.dup, net.long_delay) == spell and self._reliable())

    def _reliable(self) -> None:
        net = self.world.network
        net.drop = net.dup = net.long_delay = 0.0
        net.reorder = False
        self.world.trace("network: reliable again")

    def slow_snapshots(self) -> None:
        net = self.world.network
        net.slow_snapshots = self.rng.choice([0.0, 0.3, 0.8])
        self.world.trace(f"network: slow snapshot streams {net.slow_snapshots}")

    def slow_disk(self) -> None:
        up = [m for m in self.cluster.live() if m.up]
        if not up:
            return
        name = self.rng.choice(up).process.name
        slow = self.world.slow_disk
        slow.add(name)
        self.world.trace(f"slow disk on {name}")
        self._later(SLOW_DISK, lambda: slow.discard(name))

    def heal(self) -> None:
        """No more faults: the network heals, paused members resume, disks are fast and sound."""
        self.active = False
        self.heal_network()
        self.world.slow_disk.clear()
        for member in self.cluster.live():
            if member.up:
                member.fs.disarm()
                member.resume()
