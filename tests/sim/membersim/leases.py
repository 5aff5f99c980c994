"""A seeded lease client: grants short leases, attaches the workload's keys to them, keeps some
alive for a while, revokes some and lets the rest expire.

Its puts are checked writes like any (token in the value); grants, keep-alives and revokes
carry no token and are recorded unchecked: what they do shows in the keys, whose every read is
checked against the reference, which applies the same grants and revokes (reference.py), and
in HashKV and the final state on every member (a member whose attachments were wrong would
delete other keys at a revoke).
"""
from __future__ import annotations

import asyncio

from pyetcd.proto.etcdserverpb import rpc_pb2

from membersim.history import Outcome
from membersim.reference import token
from membersim.workload import KVClient


class LeaseClient(KVClient):
    async def run(self, until: float) -> None:
        loop = self.cluster.world.loop
        rng = self.rng
        granted: list[int] = []
        while loop.time() < until:
            r = rng.random()
            if r < 0.25 or not granted:
                op = await self.call("lease_grant", rpc_pb2.LeaseGrantRequest(TTL=rng.randint(2, 4)), "lease_grant")
                if op.outcome is Outcome.OK:
                    granted.append(op.response.ID)
            elif r < 0.6:
                lease_id, key = rng.choice(granted), self._key()
                await self.call("put", lambda op_id: rpc_pb2.PutRequest(key=key, value=token(op_id), lease=lease_id),
                                "put")
            elif r < 0.9:
                await self.call("lease_keep_alive", rpc_pb2.LeaseKeepAliveRequest(ID=rng.choice(granted)),
                                "lease_keep_alive")
            else:
                lease_id = granted.pop(rng.randrange(len(granted)))
                await self.call("lease_revoke", rpc_pb2.LeaseRevokeRequest(ID=lease_id), "lease_revoke")
            await asyncio.sleep(rng.expovariate(1 / self.think))
