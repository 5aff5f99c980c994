"""The cluster operator: adds, removes and promotes members while everything else goes on.

An added member is a new machine with an empty data dir, started with
``--initial-cluster-state existing`` and the member list the add returned, as etcdctl tells an
operator to. When the add's outcome is unknown, the machine is started all the same (if the add
did not happen, its start fails: it is not in the cluster). Removed members stop by themselves
(member.py watches for that). The strict reconfiguration check keeps the cluster from losing
its quorum by a removal; the operator keeps it at ``max_members`` at most, and with
``two_voter_removal`` off never removes one of two voters (FINDINGS.md F8), with
``add_while_down`` off never adds one while another member is down (F11).
"""
from __future__ import annotations

import asyncio
import random

from pyetcd.proto.etcdserverpb import rpc_pb2

from membersim.cluster import Cluster
from membersim.history import History, Outcome, classify


class Reconfigurer:
    def __init__(self, cluster: Cluster, history: History, rng: random.Random, timeout: float,
                 max_members: int, interval: float, two_voter_removal: bool, add_while_down: bool) -> None:
        self.cluster = cluster
        self.history = history
        self.rng = rng
        self.timeout = timeout
        self.max_members = max_members
        self.interval = interval
        self.two_voter_removal = two_voter_removal
        self.add_while_down = add_while_down

    async def run(self, until: float) -> None:
        await asyncio.gather(self._operate(until), self._undo(until))

    async def _operate(self, until: float) -> None:
        loop = self.cluster.world.loop
        while loop.time() < until:
            await asyncio.sleep(self.rng.uniform(0.5, 2) * self.interval)
            members = await self._member_list()
            if members is None:
                continue
            learners = [m for m in members if m.isLearner]
            voters = [m for m in members if not m.isLearner]
            removable = [m for m in members if m.isLearner or len(voters) != 2 or self.two_voter_removal]
            choices = ["remove"] if len(members) > 1 and removable else []
            quiet = self.add_while_down or all(m.up for m in self.cluster.live())
            if len(members) < self.max_members and quiet:
                choices.append("add")
            if learners:
                choices += ["promote", "promote"]
            if not choices:
                continue
            action = self.rng.choice(choices)
            if action == "add":
                await self.add()
            elif action == "remove":
                await self.remove(self.rng.choice(removable))
            else:
                await self.promote(self.rng.choice(learners))

    async def _remove_unwanted(self, members: list[rpc_pb2.Member]) -> None:
        unwanted = self.cluster.unwanted
        member_id = next(iter(unwanted))
        target = next((m for m in members if m.ID == member_id), None)
        done = False
        if target is not None and len(members) > 1:
            op = await self.remove(target)
            done = op is not None and op.outcome is Outcome.OK
        unwanted[member_id] -= 1
        if done or not unwanted[member_id]:
            del unwanted[member_id]
        else:
            await asyncio.sleep(0.1)

    async def _undo(self, until: float) -> None:
        """Remove the members the fault injector wants gone, while any other operation runs."""
        loop = self.cluster.world.loop
        while loop.time() < until:
            await asyncio.sleep(0.05)
            if self.cluster.unwanted:
                members = await self._member_list()
                if members is not None:
                    await self._remove_unwanted(members)

    async def _call(self, kind: str, request, method: str):
        serving = self.cluster.serving()
        if not serving:
            return None
        member = self.rng.choice(serving)
        loop = self.cluster.world.loop
        op = self.history.begin("operator", member.name, kind, request, loop.time())
        try:
            op.response = await self.cluster.call("operator", member, lambda s: getattr(s, method)(request),
                                                  self.timeout)
            op.outcome = Outcome.OK
        except Exception as e:  # noqa: BLE001 - every failure is an outcome to record
            op.error, op.outcome = e, classify(e)
        op.returned = loop.time()
        self.cluster.world.trace(str(op), "operator")
        return op

    async def _member_list(self) -> list[rpc_pb2.Member] | None:
        serving = self.cluster.serving()
        if not serving:
            return None
        try:
            resp = await self.cluster.call("operator", self.rng.choice(serving),
                                           lambda s: s.member_list(rpc_pb2.MemberListRequest()), self.timeout)
        except Exception:  # noqa: BLE001 - try again later
            return None
        return list(resp.members)

    async def add(self) -> None:
        member = self.cluster.new_member()
        learner = self.rng.random() < 0.6
        op = await self._call("member_add", rpc_pb2.MemberAddRequest(peerURLs=[member.peer_url], isLearner=learner),
                              "member_add")
        if op is None or op.outcome is Outcome.FAILED:
            member.removed = True  # never in the cluster: the machine is retired unused
            return
        if op.outcome is Outcome.OK:
            op.note["member_id"] = op.response.member.ID
            urls = [(self.cluster.by_peer_url(u), u) for m in op.response.members for u in m.peerURLs]
        else:
            urls = [(m, m.peer_url) for m in self.cluster.live()]
        initial = ",".join(f"{m.name}={url}" for m, url in urls if m is not None)
        member.cluster_flags = {"initial-cluster": initial, "initial-cluster-state": "existing"}
        self.cluster.start(member)

    async def remove(self, target: rpc_pb2.Member):
        op = await self._call("member_remove", rpc_pb2.MemberRemoveRequest(ID=target.ID), "member_remove")
        if op is not None:
            op.note["member_id"] = target.ID
        return op

    async def promote(self, target: rpc_pb2.Member) -> None:
        op = await self._call("member_promote", rpc_pb2.MemberPromoteRequest(ID=target.ID), "member_promote")
        if op is not None:
            op.note["member_id"] = target.ID
