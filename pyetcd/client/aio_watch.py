"""The asyncio client's watch and lease keep-alive (same behaviour as the blocking ones).

    async with client.watch("foo", prefix=True) as w:
        async for resp in w:
            ...                                  # w.cancel() ends the iteration

    async with client.keep_alive(lease_id) as ka:   # a task renewing every TTL/3
        ...
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable, Optional

import grpc
import grpc.aio

from pyetcd.client import _common as c
from pyetcd.client.lease import renew_interval
from pyetcd.client.watch import MAX_BACKOFF, is_stream_break
from pyetcd.client.watch_state import REQUIRE_LEADER, WatchCursor, progress_request
from pyetcd.errors import ErrLeaseNotFound
from pyetcd.proto.etcdserverpb import rpc_pb2

if TYPE_CHECKING:
    from pyetcd.client.aio import AsyncClient


class AsyncWatch:
    """Async iterator of ``WatchResponse``; resumes after reconnects (see ``pyetcd.client.watch``)."""

    def __init__(self, client: AsyncClient, cursor: WatchCursor, require_leader: bool = True) -> None:
        self._client, self._cursor, self._require_leader = client, cursor, require_leader
        self._closed = asyncio.Event()
        self._call: Any = None  # the open grpc.aio stream
        self.task: Optional[asyncio.Future[None]] = None  # add_watch_callback's task
        self._endpoint = client._current

    @property
    def next_revision(self) -> int:
        return self._cursor.next_revision

    async def _open(self) -> None:
        ep = self._client.endpoints[self._endpoint % len(self._client.endpoints)]
        metadata = await self._client._stream_metadata(ep) + ((REQUIRE_LEADER,) if self._require_leader else ())
        self._call = self._client._stub(ep, "watch").Watch(metadata=metadata)
        await self._call.write(self._cursor.create_request())

    def _drop(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()

    def __aiter__(self) -> "AsyncWatch":
        return self

    async def __anext__(self) -> rpc_pb2.WatchResponse:
        backoff = 0.02
        while True:
            if self._closed.is_set():
                raise StopAsyncIteration
            try:
                if self._call is None:
                    await self._open()
                resp = await self._call.read()
            except (grpc.RpcError, asyncio.CancelledError) as exc:
                if self._closed.is_set():
                    raise StopAsyncIteration from None
                if isinstance(exc, asyncio.CancelledError):
                    raise
                if not is_stream_break(exc):
                    self._drop()
                    raise c.map_error(exc) from None
                resp = grpc.aio.EOF
            if resp is grpc.aio.EOF:
                if self._closed.is_set():
                    raise StopAsyncIteration
                self._drop()
                self._endpoint += 1
                try:
                    await asyncio.wait_for(self._closed.wait(), backoff)
                except asyncio.TimeoutError:
                    pass
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            try:
                out = self._cursor.accept(resp)
            except Exception:
                self._drop()
                raise
            if out is not None:
                return out

    async def request_progress(self) -> None:
        if self._call is not None:
            await self._call.write(progress_request())

    def cancel(self) -> None:
        self._closed.set()
        self._drop()

    async def __aenter__(self) -> "AsyncWatch":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()


class AsyncKeepAlive:
    """Renews ``lease_id`` in a task until ``stop()`` (or the lease is gone: ``expired``)."""

    def __init__(self, client: AsyncClient, lease_id: int,
                 on_response: Optional[Callable[[rpc_pb2.LeaseKeepAliveResponse], None]] = None) -> None:
        self._client, self.lease_id, self._on_response = client, lease_id, on_response
        self.expired = False
        self.ttl = 0
        self.error: Optional[Exception] = None
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        backoff, endpoint = 0.02, self._client._current
        while True:
            ep = self._client.endpoints[endpoint % len(self._client.endpoints)]
            call = self._client._stub(ep, "lease").LeaseKeepAlive(metadata=await self._client._stream_metadata(ep))
            try:
                while True:
                    await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=self.lease_id))
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        raise EOFError
                    backoff = 0.02
                    self.expired = resp.TTL <= 0
                    if self._on_response is not None:
                        self._on_response(resp)
                    if self.expired:
                        return
                    self.ttl = resp.TTL
                    await asyncio.sleep(renew_interval(resp.TTL))
            except (grpc.RpcError, EOFError) as exc:
                if isinstance(exc, grpc.RpcError) and not is_stream_break(exc):
                    self.error = c.map_error(exc)
                    return
                endpoint += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                call.cancel()

    async def stop(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    async def wait(self) -> None:
        """Until the task ends by itself (lease gone or an error)."""
        await asyncio.shield(self._task)

    @property
    def done(self) -> bool:
        return self._task.done()

    async def __aenter__(self) -> "AsyncKeepAlive":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def keep_alive_once(client: AsyncClient, lease_id: int, timeout: Optional[float] = None) -> rpc_pb2.LeaseKeepAliveResponse:
    ep = client.endpoints[client._current]
    call = client._stub(ep, "lease").LeaseKeepAlive(metadata=await client._stream_metadata(ep),
                                                    timeout=client.timeout if timeout is None else timeout)
    try:
        await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
        resp = await call.read()
    except grpc.RpcError as err:
        raise c.map_error(err, client.last_connect_error) from None
    finally:
        call.cancel()
    if resp is grpc.aio.EOF or resp.TTL <= 0:
        raise ErrLeaseNotFound
    out: rpc_pb2.LeaseKeepAliveResponse = resp
    return out
