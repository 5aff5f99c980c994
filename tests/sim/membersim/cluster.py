"""The simulated cluster: its member machines, founders and those added later.

Members are named m1, m2, ... (a name is never reused: a removed member's machine stays
removed). ``call()`` is how clients, the operator and the checks reach a member's server
methods: over the network, in the member's process.
"""
from __future__ import annotations

from typing import Awaitable, Callable, TypeVar

from membersim.member import SimMember
from membersim.simfs import DiskFault
from membersim.world import World

T = TypeVar("T")


class Cluster:
    def __init__(self, world: World, founders: int) -> None:
        self.world = world
        # the disk fault plan of each new process (the fault injector plugs its own in)
        self.disk_faults: Callable[[SimMember], list[DiskFault]] = lambda member: []
        # told when a client starts a burst of writes at a member (reactive faults hook in)
        self.on_burst: Callable[[SimMember], None] = lambda member: None
        # member IDs the operator removes first (a reactive fault wants an add undone soon), and
        # how many more rounds it tries
        self.unwanted: dict[int, int] = {}
        self.members: dict[str, SimMember] = {}
        initial = ",".join(f"m{i}=http://m{i}:2380" for i in range(1, founders + 1))
        for _ in range(founders):
            member = self.new_member()
            member.cluster_flags = {"initial-cluster": initial, "initial-cluster-state": "new"}

    def new_member(self) -> SimMember:
        member = SimMember(self.world, f"m{len(self.members) + 1}")
        self.members[member.name] = member
        return member

    def by_peer_url(self, url: str) -> SimMember | None:
        return next((m for m in self.members.values() if m.peer_url == url), None)

    def start(self, member: SimMember) -> None:
        member.start(self.disk_faults(member))

    def live(self) -> list[SimMember]:
        """Members not known to have left (running or not)."""
        return [m for m in self.members.values() if not m.removed]

    def serving(self) -> list[SimMember]:
        return [m for m in self.members.values() if m.serving]

    def leader(self) -> SimMember | None:
        """A serving member that believes it leads (there may be a stale one, cut off)."""
        return next((m for m in self.serving() if m.server.is_leader), None)

    async def call(self, src: str, member: SimMember, method: Callable[[object], Awaitable[T]],
                   timeout: float) -> T:
        return await self.world.network.call_client_port(src, member.client_url, method, timeout)
