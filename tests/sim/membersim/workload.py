"""Seeded KV clients: puts, deletes, compare-and-swap txns, multi-key txns, reads, compactions.

Each client calls one random member at a time (a real client's connection), now and then a
burst of concurrent puts, and records every call in the History. Keys come from a small set,
so operations contend. Every write carries a unique token (reference.token) that maps it to its
entry in the log: a put's value, a compare-and-swap's new value, a delete's ``range_end``
(``key + b"\\0" + token``: the same single-key range for our keys, which never contain a zero
byte).

The compare-and-swap is Kubernetes' update: read the key, then
``Txn(If mod_revision(key) == seen, Then put(key), Else range(key))``. A multi-key txn puts
several keys and deletes a range at one revision (a watcher gets them in one response); its
token is in its first put's value only.
"""
from __future__ import annotations

import asyncio
import random
from typing import Callable

from google.protobuf.message import Message

from pyetcd.proto.etcdserverpb import rpc_pb2

from membersim.cluster import Cluster
from membersim.history import History, Op, Outcome, classify
from membersim.member import SimMember
from membersim.reference import token

KEYS = [b"k%d" % i for i in range(6)]
PREFIX, PREFIX_END = b"k", b"l"
Compare = rpc_pb2.Compare


class KVClient:
    def __init__(self, name: str, cluster: Cluster, history: History, rng: random.Random, timeout: float,
                 think: float) -> None:
        self.name = name
        self.cluster = cluster
        self.history = history
        self.rng = rng
        self.timeout = timeout
        self.think = think
        self.last_revision = 1
        self.compacted = 0

    async def run(self, until: float) -> None:
        loop = self.cluster.world.loop
        rng = self.rng
        while loop.time() < until:
            r = rng.random()
            if r < 0.05:
                await self.burst()
            elif r < 0.33:
                await self.put()
            elif r < 0.37:
                await self.write_several()
            elif r < 0.45:
                await self.delete()
            elif r < 0.65:
                await self.compare_and_swap()
            elif r < 0.98:
                await self.read(linearizable=rng.random() < 0.6)
            else:
                await self.compact()
            await asyncio.sleep(rng.expovariate(1 / self.think))

    def _member(self) -> SimMember:
        """A member to call: mostly one that is serving, now and then any."""
        members = self.cluster.live()
        up = [m for m in members if m.serving]
        return self.rng.choice(up if up and self.rng.random() < 0.9 else members)

    async def call(self, kind: str, request: Callable[[int], Message] | Message, method: str,
                   member: SimMember | None = None) -> Op:
        """One call (to ``member``, else a random one); ``request`` may be a function of the
        operation's ID (to embed its token)."""
        member = member or self._member()
        loop = self.cluster.world.loop
        op = self.history.begin(self.name, member.name, kind, request, loop.time())
        request = op.request
        sent = type(request).FromString(request.SerializeToString())
        try:
            response = await self.cluster.call(self.name, member, lambda s: getattr(s, method)(sent), self.timeout)
        except Exception as e:  # noqa: BLE001 - every failure is an outcome to record
            op.error, op.outcome = e, classify(e)
        else:
            op.response, op.outcome = response, Outcome.OK
            self.last_revision = max(self.last_revision, response.header.revision)
        op.returned = loop.time()
        self.cluster.world.trace(str(op), self.name)
        return op

    def _key(self) -> bytes:
        return self.rng.choice(KEYS)

    async def put(self, member: SimMember | None = None) -> None:
        key, prev_kv = self._key(), self.rng.random() < 0.3
        await self.call("put", lambda op_id: rpc_pb2.PutRequest(key=key, value=token(op_id), prev_kv=prev_kv), "put",
                        member)

    async def burst(self) -> None:
        """Many puts at once, mostly to the leader (a controller's parallel writes): a leader cut
        off then piles up a long uncommitted tail in its log and its followers'."""
        leader = self.cluster.leader()
        member = leader if leader is not None and self.rng.random() < 0.7 else self._member()
        size = self.rng.randint(5, 30) if self.rng.random() < 0.8 else self.rng.randint(50, 200)
        self.cluster.on_burst(member)
        await asyncio.gather(*[self.put(member) for _ in range(size)])

    async def delete(self) -> None:
        key, prev_kv = self._key(), self.rng.random() < 0.5
        await self.call("delete", lambda op_id: rpc_pb2.DeleteRangeRequest(
            key=key, range_end=key + b"\0" + token(op_id), prev_kv=prev_kv), "delete_range")

    async def write_several(self) -> None:
        rng = self.rng
        cut = rng.randrange(len(KEYS))
        deleted = KEYS[cut:cut + rng.randint(0, 2)]
        puts = rng.sample([k for k in KEYS if k not in deleted], rng.randint(1, 3))

        def request(op_id: int) -> rpc_pb2.TxnRequest:
            ops = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=token(op_id) if i == 0 else
                                                                    b"%d/%d" % (op_id, i)))
                   for i, k in enumerate(puts)]
            if deleted:
                ops.append(rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(
                    key=deleted[0], range_end=deleted[-1] + b"\0")))
            return rpc_pb2.TxnRequest(success=ops)
        await self.call("txn", request, "txn")

    async def compare_and_swap(self) -> None:
        key = self._key()
        seen = await self.call("range", rpc_pb2.RangeRequest(key=key, serializable=self.rng.random() < 0.5), "range")
        if seen.outcome is not Outcome.OK:
            return
        mod = seen.response.kvs[0].mod_revision if seen.response.kvs else 0
        await self.call("txn", lambda op_id: rpc_pb2.TxnRequest(
            compare=[Compare(key=key, target=Compare.MOD, result=Compare.EQUAL, mod_revision=mod)],
            success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=token(op_id)))],
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))]), "txn")

    async def read(self, linearizable: bool) -> None:
        rng = self.rng
        if rng.random() < 0.5:
            req = rpc_pb2.RangeRequest(key=self._key())
        else:
            req = rpc_pb2.RangeRequest(key=PREFIX, range_end=PREFIX_END, limit=rng.choice([0, 0, 2]),
                                       keys_only=rng.random() < 0.2)
        if rng.random() < 0.15 and self.last_revision > 1:
            req.revision = rng.randint(max(1, self.compacted), self.last_revision)
        req.serializable = not linearizable
        await self.call("range", req, "range")

    async def compact(self) -> None:
        if self.last_revision <= self.compacted + 1:
            return
        revision = self.rng.randint(self.compacted + 1, self.last_revision)
        op = await self.call("compact", rpc_pb2.CompactionRequest(revision=revision), "compact")
        if op.outcome is Outcome.OK:
            self.compacted = revision
