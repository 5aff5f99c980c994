"""One seed, start to end: a cluster under workload and faults, then healed, converged, checked.

1. 1..max_members founders start (each process with its own disk fault plan);
2. for ``duration`` virtual seconds, KV clients, watch clients, the reconfigurer and the fault
   injector run;
3. every fault heals; members that are down and still in the cluster restart; the members
   must converge (one leader, everyone applied the leader's commit index, a last write applied
   everywhere) within ``converge_timeout``, and again once the requests still in flight had
   time to settle;
4. the checks (checks.py) run — the watches' once they were resumed and read to the end
   (watchclient.finish, watchcheck.py); any finding raises SimFailure with the seed and the
   trace tail.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar
from unittest import mock

from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.server.etcdserver import EtcdServer
from pyetcd.v3rpc import watch

from membersim import checks
from membersim.cluster import Cluster
from membersim.failure import Finding, SimFailure
from membersim.faults import FaultInjector
from membersim.history import History
from membersim.member import SimMember
from membersim.options import Options
from membersim.reconfig import Reconfigurer
from membersim.reference import Reference
from membersim.leases import LeaseClient
from membersim.watchcheck import WatchReference, check_watches
from membersim.watchclient import Watch, WatchClient
from membersim.workload import KVClient
from membersim.world import World

SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None  # LMDB and the WAL on a tmpfs: fast
POLL = 0.05
T = TypeVar("T")
RESTART_PAUSE = 1.0  # while converging, a member that will not start is tried again this often
WATCH_DRAIN = 10.0  # after convergence, seconds for every watch to catch up


@dataclass
class RunStats:
    seed: int
    digest: str
    virtual_seconds: float
    entries: int
    processes: int
    ops: Counter
    snapshots: Counter


class Simulation:
    def __init__(self, world: World, options: Options) -> None:
        self.world = world
        self.options = options
        self.history = History()
        rng = world.rng_for("scenario")
        founders = rng.randint(options.min_members, options.max_members)
        self.cluster = Cluster(world, founders)
        self.injector = FaultInjector(self.cluster, world.rng_for("faults"), options.faults, options.fault_interval)
        self.cluster.disk_faults = self.injector.disk_faults
        self.reference: Reference | None = None
        self.watches: list[Watch] = []

    async def run(self) -> list[Finding]:
        world, options, cluster = self.world, self.options, self.cluster
        for member in list(cluster.members.values()):
            cluster.start(member)
        until = world.loop.time() + options.duration
        kv_clients = [KVClient(f"c{i}", cluster, self.history, world.rng_for(f"client-{i}"), options.client_timeout,
                               options.think) for i in range(options.clients)]

        def revision_hint() -> tuple[int, int]:
            return max(c.last_revision for c in kv_clients), max(c.compacted for c in kv_clients)
        services: dict = {}
        watch_clients = [WatchClient(f"w{i}", cluster, self.watches, world.rng_for(f"watch-{i}"), services,
                                     revision_hint) for i in range(options.watch_clients)]
        actors = [c.run(until) for c in kv_clients + watch_clients]
        actors += [LeaseClient(f"l{i}", cluster, self.history, world.rng_for(f"lease-client-{i}"),
                               options.client_timeout, options.think).run(until) for i in range(options.lease_clients)]
        actors.append(self.injector.run(until))
        if options.faults.membership and options.max_members > 1:
            actors.append(Reconfigurer(cluster, self.history, world.rng_for("reconfig"), options.client_timeout,
                                       options.max_members, options.reconfig_interval,
                                       options.faults.two_voter_removal, options.faults.add_while_down).run(until))
        await asyncio.gather(*actors)
        self.injector.heal()
        world.trace("healed: converging")
        converged = await self.converge()
        if not isinstance(converged, Finding):
            # Proposals whose clients gave up may still commit (or be fenced) for up to two
            # request timeouts: let them settle, so that the log checked is the final one.
            await asyncio.sleep(2 * options.request_timeout + 1)
            world.trace("settled: converging again")
            converged = await self.converge()
        findings = checks.run_time_findings(world)
        if isinstance(converged, Finding):
            return findings + [converged]
        findings += checks.log_gaps(world.recorder.log)
        if findings:
            return findings
        history_findings, self.reference = checks.check_history_against(
            world, self.history, os.path.join(world.run_dir, "reference"))
        findings += history_findings
        watch_ref = WatchReference.of_reference(self.reference)
        await asyncio.gather(*(c.finish(converged, watch_ref.target, WATCH_DRAIN) for c in watch_clients))
        findings += check_watches(self.watches, watch_ref)
        findings += await checks.check_members(converged, self.reference, self._ask)
        return findings

    async def converge(self) -> list[SimMember] | Finding:
        """Restart who is down and in the cluster; wait until every member applied the leader's
        last write. Returns the members in the cluster, or a liveness Finding."""
        loop, cluster = self.world.loop, self.cluster
        deadline = loop.time() + self.options.converge_timeout
        restarted: dict[str, float] = {}
        barrier_done = False
        while loop.time() < deadline:
            in_cluster = await self._members_in_cluster()
            for member in cluster.live():
                if not member.up and (in_cluster is None or member in in_cluster) and \
                        loop.time() - restarted.get(member.name, -RESTART_PAUSE) >= RESTART_PAUSE:
                    restarted[member.name] = loop.time()
                    cluster.start(member)
            leader = cluster.leader()
            if leader is not None and in_cluster is not None and all(m.serving for m in in_cluster):
                if not barrier_done:
                    barrier_done = await self._barrier(leader)
                elif await self._all_applied(leader, in_cluster):
                    return in_cluster
            await asyncio.sleep(POLL)
        states = [await self._describe(m) for m in cluster.members.values()]
        return Finding("liveness", f"no convergence {self.options.converge_timeout:g}s after healing: "
                       + "; ".join(states), loop.time())

    async def _ask(self, member: SimMember, method: Callable[[EtcdServer], Awaitable[T]]) -> T:
        return await self.cluster.call("checker", member, method, self.options.client_timeout)

    async def _describe(self, member: SimMember) -> str:
        if member.removed:
            return f"{member.name} removed"
        if not member.serving:
            return f"{member.name} {member.process.state.value if member.process else 'never started'}"
        s = await self._ask(member, lambda server: server.status(rpc_pb2.StatusRequest()))
        return (f"{member.name} {member.server.member_id:x} leader={s.leader:x} term={s.raftTerm} "
                f"commit={s.raftIndex} applied={s.raftAppliedIndex} learner={s.isLearner}")

    async def _members_in_cluster(self) -> list[SimMember] | None:
        """The members in the leader's member list (None: no leader, or it did not answer)."""
        leader = self.cluster.leader()
        if leader is None:
            return None
        try:
            listed = await self._ask(leader, lambda server: server.member_list(rpc_pb2.MemberListRequest()))
        except Exception:  # noqa: BLE001 - not yet: ask again
            return None
        urls = {u for m in listed.members for u in m.peerURLs}
        for member in self.cluster.live():
            if member.peer_url not in urls and not member.up and member.runs:
                member.removed = True  # left the cluster, or never got in: retired
        return [m for m in self.cluster.live() if m.peer_url in urls]

    async def _barrier(self, leader: SimMember) -> bool:
        try:
            await self._ask(leader, lambda server: server.put(rpc_pb2.PutRequest(key=b"sim/converged")))
            return True
        except Exception:  # noqa: BLE001 - not yet: try again
            return False

    async def _all_applied(self, leader: SimMember, members: list[SimMember]) -> bool:
        try:
            target = await self._ask(leader, lambda server: server.status(rpc_pb2.StatusRequest()))
            if target.raftAppliedIndex < target.raftIndex:
                return False
            for member in members:
                status = await self._ask(member, lambda server: server.status(rpc_pb2.StatusRequest()))
                if status.raftAppliedIndex != target.raftAppliedIndex:
                    return False
        except Exception:  # noqa: BLE001 - a member restarting: not yet
            return False
        return True

    def teardown(self) -> None:
        world = self.world
        world.closing = True
        for process in world.processes:
            process.kill()
        for process in world.processes:
            process.dispose()
        if self.reference is not None:
            self.reference.close()

    def stats(self, digest: str) -> RunStats:
        ops = Counter(f"{op.kind}:{op.outcome.value if op.outcome else 'pending'}" for op in self.history.ops)
        return RunStats(self.world.seed, digest, self.world.loop.time(), len(self.world.recorder.log),
                        len(self.world.processes), ops, self.world.network.stats)


def run_seed(seed: int, options: Options | None = None) -> RunStats:
    """Run one seed; raises SimFailure if an invariant broke. Same seed, same run."""
    options = options or Options()
    run_dir = tempfile.mkdtemp(prefix=f"membersim-{seed}-", dir=SCRATCH)
    try:
        with World(seed, run_dir, options.member_flags(), verbose=options.verbose) as world, \
                mock.patch.object(watch, "BUFFER", options.watch_queue):
            sim = Simulation(world, options)
            try:
                findings = world.loop.run_until_complete(sim.run())
            finally:
                sim.teardown()
                world.loop.close()
            digest = world.trace.digest()
            if findings:
                raise SimFailure(seed, findings, world.trace.tail(), digest)
            return sim.stats(digest)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
