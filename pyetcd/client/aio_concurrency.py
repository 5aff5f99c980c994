"""asyncio twins of ``pyetcd.client.concurrency`` (same Go key layout, same requests).

    async with AsyncSession(client, ttl=10) as s:
        async with AsyncLock(s, "jobs"):
            ...
        e = AsyncElection(s, "leader")
        await e.campaign(b"me")
        async for resp in e.observe(): ...
"""
from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator, Optional

from pyetcd.client._common import Bytes, prefix_end, to_bytes
from pyetcd.client.concurrency import (DEFAULT_SESSION_TTL, claim_request, claim_result, leader_request,
                                       not_leader, older_waiter_request, proclaim_request, session_key)
from pyetcd.errors import EtcdError
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.proto.mvccpb import kv_pb2

if TYPE_CHECKING:
    from pyetcd.client.aio import AsyncClient
    from pyetcd.client.aio_watch import AsyncKeepAlive


class AsyncSession:
    """A lease renewed by a task until ``await close()`` revokes it. Create with ``await AsyncSession.open``
    or ``async with AsyncSession(client)``."""

    def __init__(self, client: AsyncClient, ttl: int = DEFAULT_SESSION_TTL, lease_id: int = 0) -> None:
        self.client, self.ttl, self.lease_id = client, ttl, lease_id
        self.keep_alive: Optional[AsyncKeepAlive] = None

    async def open(self) -> "AsyncSession":
        if not self.lease_id:
            self.lease_id = (await self.client.lease_grant(self.ttl)).ID
        self.keep_alive = self.client.keep_alive(self.lease_id)
        return self

    async def close(self) -> None:
        if self.keep_alive is not None:
            await self.keep_alive.stop()
        try:
            await self.client.lease_revoke(self.lease_id)
        except EtcdError:
            pass  # already gone or unreachable: it expires by itself

    async def __aenter__(self) -> "AsyncSession":
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def wait_delete(client: AsyncClient, key: bytes, revision: int) -> None:
    async with client.watch(key, start_revision=revision + 1) as w:
        async for resp in w:
            if any(ev.type == kv_pb2.Event.DELETE for ev in resp.events):
                return


async def wait_deletes(client: AsyncClient, prefix: bytes, max_create_revision: int) -> rpc_pb2.ResponseHeader:
    while True:
        resp = await client.range(older_waiter_request(prefix, max_create_revision))
        if not resp.kvs:
            return resp.header
        await wait_delete(client, resp.kvs[0].key, resp.header.revision)


class AsyncLock:
    def __init__(self, session: AsyncSession, name: Bytes) -> None:
        self.session, self.client = session, session.client
        self.prefix = to_bytes(name) + b"/"
        self.revision = 0
        self.header: Optional[rpc_pb2.ResponseHeader] = None

    @property
    def key(self) -> bytes:
        return session_key(self.prefix, self.session.lease_id)

    async def acquire(self) -> None:
        resp = await self.client.txn(claim_request(self.key, b"", self.session.lease_id))
        self.revision, self.header, _ = claim_result(resp)
        try:
            self.header = await wait_deletes(self.client, self.prefix, self.revision - 1)
        except BaseException:
            await self.release()
            raise

    async def release(self) -> None:
        await self.client.delete(self.key)

    async def __aenter__(self) -> "AsyncLock":
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class AsyncElection:
    def __init__(self, session: AsyncSession, name: Bytes) -> None:
        self.session, self.client = session, session.client
        self.prefix = to_bytes(name) + b"/"
        self.revision = 0

    @property
    def key(self) -> bytes:
        return session_key(self.prefix, self.session.lease_id)

    async def campaign(self, value: Bytes) -> rpc_pb2.ResponseHeader:
        value = to_bytes(value)
        self.revision, _, had = claim_result(await self.client.txn(claim_request(self.key, value, self.session.lease_id)))
        if had is not None and had != value:
            await self.proclaim(value)
        try:
            return await wait_deletes(self.client, self.prefix, self.revision - 1)
        except BaseException:
            await self.resign()
            raise

    async def proclaim(self, value: Bytes) -> None:
        resp = await self.client.txn(proclaim_request(self.key, self.revision, to_bytes(value), self.session.lease_id))
        if not resp.succeeded:
            raise not_leader()

    async def resign(self) -> None:
        await self.client.delete(self.key)

    async def leader(self) -> rpc_pb2.RangeResponse:
        return await self.client.range(leader_request(self.prefix))

    async def observe(self) -> AsyncIterator[rpc_pb2.RangeResponse]:
        """A RangeResponse with the leader's key-value whenever the leader or its value changes."""
        while True:
            resp = await self.leader()
            if resp.kvs:
                header, kv = resp.header, resp.kvs[0]
            else:
                header, kv = await self._first_put(resp.header.revision)
            yield rpc_pb2.RangeResponse(header=header, kvs=[kv], count=1)
            async with self.client.watch(kv.key, start_revision=kv.mod_revision + 1) as w:
                async for wresp in w:
                    if any(ev.type == kv_pb2.Event.DELETE for ev in wresp.events):
                        break
                    for ev in wresp.events:
                        yield rpc_pb2.RangeResponse(header=wresp.header, kvs=[ev.kv], count=1)

    async def _first_put(self, revision: int) -> tuple[rpc_pb2.ResponseHeader, kv_pb2.KeyValue]:
        async with self.client.watch(self.prefix, prefix_end(self.prefix), start_revision=revision + 1) as w:
            async for resp in w:
                for ev in resp.events:
                    if ev.type == kv_pb2.Event.PUT:
                        return resp.header, ev.kv
        raise EtcdError(1, "watch ended")
