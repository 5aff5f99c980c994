"""The asyncio etcd v3 client (grpc.aio); same API and failover rules as ``Client``."""
from __future__ import annotations

import asyncio
import time
from typing import Optional, Sequence, Union

import grpc
import grpc.aio

from pyetcd.client import _common as c
from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

_READY = grpc.ChannelConnectivity.READY
_FAILED = (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN)


async def _wait_connected(channel: grpc.aio.Channel, timeout: float) -> bool:
    async def settle() -> bool:
        state = channel.get_state(try_to_connect=True)
        while state != _READY and state not in _FAILED:
            await channel.wait_for_state_change(state)
            state = channel.get_state(try_to_connect=True)
        return state == _READY

    try:
        return await asyncio.wait_for(settle(), max(timeout, 0))
    except asyncio.TimeoutError:
        return False


class AsyncClient:
    """asyncio twin of ``pyetcd.client.Client``; every KV method is a coroutine."""

    def __init__(self, endpoints: Union[str, Sequence[str]] = ("127.0.0.1:2379",),
                 dial_timeout: float = c.DEFAULT_DIAL_TIMEOUT, timeout: float = c.DEFAULT_TIMEOUT) -> None:
        self.endpoints = c.normalize_endpoints(endpoints)
        self.dial_timeout = dial_timeout
        self.timeout = timeout
        self._channels: dict[int, grpc.aio.Channel] = {}
        self._connected: set[int] = set()
        self._current = 0
        self.last_connect_error = ""

    def _channel(self, idx: int) -> grpc.aio.Channel:
        ch = self._channels.get(idx)
        if ch is None:
            ch = grpc.aio.insecure_channel(c.grpc_target(self.endpoints[idx]), options=c.CHANNEL_OPTIONS)
            self._channels[idx] = ch
        return ch

    def _stub(self, idx: int, service: str):
        return getattr(rpc_pb2_grpc, c.STUBS[service])(self._channel(idx))

    def __getattr__(self, name: str):
        if name in c.STUBS:
            return self._stub(self._current, name)
        raise AttributeError(name)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
        self._connected.clear()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def call(self, service: str, method: str, request, timeout: Optional[float] = None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        backoff = 0.02
        n = len(self.endpoints)
        while True:
            for i in range(n):
                idx = (self._current + i) % n
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise c.deadline_error(self.last_connect_error)
                if idx not in self._connected:
                    if not await _wait_connected(self._channel(idx), min(self.dial_timeout, remaining)):
                        self.last_connect_error = self.endpoints[idx]
                        continue
                    self._connected.add(idx)
                try:
                    resp = await getattr(self._stub(idx, service), method)(
                        request, timeout=deadline - time.monotonic())
                except grpc.RpcError as err:
                    if not c.is_connection_error(err):
                        raise c.map_error(err, self.last_connect_error) from None
                    self._connected.discard(idx)
                    self.last_connect_error = self.endpoints[idx]
                    continue
                self._current = idx
                return resp
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise c.deadline_error(self.last_connect_error)
            await asyncio.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, 0.5)

    async def range(self, request: rpc_pb2.RangeRequest, timeout: Optional[float] = None) -> rpc_pb2.RangeResponse:
        return await self.call("kv", "Range", request, timeout)

    async def get(self, key: c.Bytes, range_end: c.Bytes = b"", timeout: Optional[float] = None,
                  **opts) -> rpc_pb2.RangeResponse:
        return await self.range(c.range_request(key, range_end, **opts), timeout)

    async def put(self, key: c.Bytes, value: c.Bytes = b"", lease: int = 0, prev_kv: bool = False,
                  ignore_value: bool = False, ignore_lease: bool = False,
                  timeout: Optional[float] = None) -> rpc_pb2.PutResponse:
        req = c.put_request(key, value, lease, prev_kv, ignore_value, ignore_lease)
        return await self.call("kv", "Put", req, timeout)

    async def delete(self, key: c.Bytes, range_end: c.Bytes = b"", prev_kv: bool = False,
                     timeout: Optional[float] = None) -> rpc_pb2.DeleteRangeResponse:
        return await self.call("kv", "DeleteRange", c.delete_request(key, range_end, prev_kv), timeout)

    async def txn(self, request: Union[rpc_pb2.TxnRequest, None] = None, compare=(), success=(), failure=(),
                  timeout: Optional[float] = None) -> rpc_pb2.TxnResponse:
        req = request if request is not None else c.txn_request(compare, success, failure)
        return await self.call("kv", "Txn", req, timeout)

    async def compact(self, revision: int, physical: bool = False,
                      timeout: Optional[float] = None) -> rpc_pb2.CompactionResponse:
        req = rpc_pb2.CompactionRequest(revision=revision, physical=physical)
        return await self.call("kv", "Compact", req, timeout)
