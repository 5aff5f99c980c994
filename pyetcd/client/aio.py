"""The asyncio etcd v3 client (grpc.aio); same API and failover rules as ``Client``."""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Callable, Iterable, Optional, Sequence, Union, cast

import grpc
import grpc.aio
from google.protobuf.message import Message

from pyetcd.client import _common as c
from pyetcd.client.auth import AuthAPI
from pyetcd.client.aio_watch import AsyncKeepAlive, AsyncWatch, keep_alive_once
from pyetcd.client.maintenance import ClusterMaintenanceAPI, SnapshotFile
from pyetcd.client.watch_state import WatchCursor
from pyetcd.errors import EtcdError
from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc


class AsyncClient(AuthAPI, ClusterMaintenanceAPI):
    """asyncio twin of ``pyetcd.client.Client``; every KV method is a coroutine."""

    def __init__(self, endpoints: Union[str, Sequence[str]] = ("127.0.0.1:2379",),
                 dial_timeout: float = c.DEFAULT_DIAL_TIMEOUT, timeout: float = c.DEFAULT_TIMEOUT,
                 user: str = "", password: str = "", tls: Optional[c.TLS] = None) -> None:
        self.endpoints = c.normalize_endpoints(endpoints)
        self.user, self.password, self.tls = user, password, tls
        self._token: Optional[str] = None
        self.auth_errors: list[EtcdError] = []  # non-fatal Authenticate failures (auth not enabled)
        self.dial_timeout = dial_timeout
        self.timeout = timeout
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._current = 0
        self.last_connect_error = ""  # endpoint of the last connection failure, and gRPC's text for it
        self.last_connect_details = ""

    def _channel(self, endpoint: str) -> grpc.aio.Channel:
        ch = self._channels.get(endpoint)
        if ch is None:
            target, creds, options = c.channel_security(endpoint, self.tls, self.dial_timeout)
            if creds is not None:
                ch = grpc.aio.secure_channel(target, creds, options=options)
            else:
                ch = grpc.aio.insecure_channel(target, options=options)
            self._channels[endpoint] = ch
        return ch

    def _stub(self, endpoint: str, service: str) -> Any:
        return getattr(rpc_pb2_grpc, c.STUBS[service])(self._channel(endpoint))

    async def snapshot(self, timeout: Optional[float] = None) -> AsyncIterator[bytes]:
        """See ``Client.snapshot``."""
        endpoint = self.endpoints[self._current]
        metadata = await self._stream_metadata(endpoint)
        replies = self._stub(endpoint, "maintenance").Snapshot(rpc_pb2.SnapshotRequest(), timeout=timeout,
                                                               metadata=metadata or None)
        try:
            async for resp in replies:
                yield resp.blob
        except grpc.RpcError as err:
            raise c.map_error(err, self.last_connect_error) from None

    async def snapshot_save(self, path: str, timeout: Optional[float] = None) -> int:
        """See ``Client.snapshot_save``."""
        with SnapshotFile(path) as f:
            async for blob in self.snapshot(timeout):
                f.add(blob)
            f.close()
            f.commit()
        return f.size

    def __getattr__(self, name: str) -> Any:
        if name in c.STUBS:
            return self._stub(self.endpoints[self._current], name)
        raise AttributeError(name)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, service: str, method: str, request: Message, timeout: Optional[float] = None,
                   endpoint: Optional[str] = None) -> Any:
        """See ``Client.call``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        backoff = 0.02
        retried_auth = False
        while True:
            for ep in c.call_targets(self.endpoints, self._current, endpoint):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise c.deadline_error(self.last_connect_error)
                try:
                    if self.user and self.password and self._token is None and not self.auth_errors:
                        await self._authenticate(ep, deadline)
                    metadata = (("token", self._token),) if self._token else None
                    resp = await getattr(self._stub(ep, service), method)(
                        request, timeout=deadline - time.monotonic(), metadata=metadata)
                except grpc.RpcError as err:
                    retried_auth = c.on_call_error(self, service, method, err, ep, retried_auth)
                    continue
                if endpoint is None:
                    self._current = self.endpoints.index(ep)
                return resp
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise c.deadline_error(self.last_connect_error)
            await asyncio.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, 0.5)

    async def _authenticate(self, endpoint: str, deadline: float) -> None:
        """Get a token for user/password; 'authentication is not enabled' is noted, not raised."""
        req = rpc_pb2.AuthenticateRequest(name=self.user, password=self.password)
        try:
            self._token = (await self._stub(endpoint, "auth").Authenticate(req, timeout=deadline - time.monotonic())).token
        except grpc.RpcError as err:
            if c.is_connection_error(err):
                raise
            exc = c.map_error(err)
            if err.details() != c.AUTH_NOT_ENABLED:
                exc.during_auth = True  # etcdctl exits 2 (bad connection) for these
                raise exc from None
            self.auth_errors.append(exc)

    async def _stream_metadata(self, endpoint: str) -> tuple[tuple[str, str], ...]:
        """Metadata for a stream on ``endpoint``: the auth token (logging in first if needed)."""
        if self.user and self.password and self._token is None and not self.auth_errors:
            await self._authenticate(endpoint, time.monotonic() + self.timeout)
        return (("token", self._token),) if self._token else ()

    async def range(self, request: rpc_pb2.RangeRequest, timeout: Optional[float] = None) -> rpc_pb2.RangeResponse:
        return cast(rpc_pb2.RangeResponse, await self.call("kv", "Range", request, timeout))

    async def get(self, key: c.Bytes, range_end: c.Bytes = b"", timeout: Optional[float] = None,
                  **opts: Any) -> rpc_pb2.RangeResponse:
        return await self.range(c.range_request(key, range_end, **opts), timeout)

    async def get_pages(self, key: c.Bytes, range_end: c.Bytes = b"", prefix: bool = False,
                        page_size: int = 1000, timeout: Optional[float] = None,
                        **opts: Any) -> AsyncIterator[rpc_pb2.RangeResponse]:
        """The range in pages of ``page_size`` keys, each a RangeResponse, following ``more`` to the
        end; every page is read at the first page's revision."""
        end = c.prefix_end(c.to_bytes(key)) if prefix else range_end
        req: Optional[rpc_pb2.RangeRequest] = c.range_request(key, end, limit=page_size, **opts)
        while req is not None:
            resp = await self.range(req, timeout)
            yield resp
            req = c.next_page(req, resp)

    async def put(self, key: c.Bytes, value: c.Bytes = b"", lease: int = 0, prev_kv: bool = False,
                  ignore_value: bool = False, ignore_lease: bool = False,
                  timeout: Optional[float] = None) -> rpc_pb2.PutResponse:
        req = c.put_request(key, value, lease, prev_kv, ignore_value, ignore_lease)
        return cast(rpc_pb2.PutResponse, await self.call("kv", "Put", req, timeout))

    async def delete(self, key: c.Bytes, range_end: c.Bytes = b"", prev_kv: bool = False,
                     timeout: Optional[float] = None) -> rpc_pb2.DeleteRangeResponse:
        return cast(rpc_pb2.DeleteRangeResponse,
                    await self.call("kv", "DeleteRange", c.delete_request(key, range_end, prev_kv), timeout))

    async def txn(self, request: Union[rpc_pb2.TxnRequest, None] = None, compare: Iterable[rpc_pb2.Compare] = (),
                  success: Iterable[c.Op] = (), failure: Iterable[c.Op] = (),
                  timeout: Optional[float] = None) -> rpc_pb2.TxnResponse:
        req = request if request is not None else c.txn_request(compare, success, failure)
        return cast(rpc_pb2.TxnResponse, await self.call("kv", "Txn", req, timeout))

    async def compact(self, revision: int, physical: bool = False,
                      timeout: Optional[float] = None) -> rpc_pb2.CompactionResponse:
        req = rpc_pb2.CompactionRequest(revision=revision, physical=physical)
        return cast(rpc_pb2.CompactionResponse, await self.call("kv", "Compact", req, timeout))

    # -- watch (see Client.watch) ---------------------------------------------------------------
    def watch(self, key: c.Bytes, range_end: c.Bytes = b"", prefix: bool = False, start_revision: int = 0,
              prev_kv: bool = False, filters: Iterable[str] = (), progress_notify: bool = False,
              require_leader: bool = True) -> AsyncWatch:
        """An ``AsyncWatch``: ``async for resp in watch``, ``cancel()``, ``await request_progress()``;
        resumes after a reconnect from the last revision delivered."""
        end = c.prefix_end(c.to_bytes(key)) if prefix else range_end
        return AsyncWatch(self, WatchCursor(key, end, start_revision, prev_kv, filters, progress_notify),
                          require_leader)

    def add_watch_callback(self, key: c.Bytes, callback: Callable[[rpc_pb2.WatchResponse], None],
                           on_error: Optional[Callable[[Exception], None]] = None, **opts: Any) -> AsyncWatch:
        """``watch(key, **opts)`` fed to ``callback(resp)`` by a task; errors go to ``on_error(exc)``."""
        watch = self.watch(key, **opts)

        async def loop() -> None:
            try:
                async for resp in watch:
                    callback(resp)
            except Exception as exc:  # delivered, not lost in a task
                if on_error is not None:
                    on_error(exc)

        watch.task = asyncio.ensure_future(loop())
        return watch

    # -- lease (see Client) --------------------------------------------------------------------
    async def lease_grant(self, ttl: int, lease_id: int = 0,
                          timeout: Optional[float] = None) -> rpc_pb2.LeaseGrantResponse:
        return cast(rpc_pb2.LeaseGrantResponse,
                    await self.call("lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=ttl, ID=lease_id), timeout))

    async def lease_revoke(self, lease_id: int, timeout: Optional[float] = None) -> rpc_pb2.LeaseRevokeResponse:
        return cast(rpc_pb2.LeaseRevokeResponse,
                    await self.call("lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=lease_id), timeout))

    async def lease_time_to_live(self, lease_id: int, keys: bool = False,
                                 timeout: Optional[float] = None) -> rpc_pb2.LeaseTimeToLiveResponse:
        req = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
        return cast(rpc_pb2.LeaseTimeToLiveResponse, await self.call("lease", "LeaseTimeToLive", req, timeout))

    async def leases(self, timeout: Optional[float] = None) -> rpc_pb2.LeaseLeasesResponse:
        return cast(rpc_pb2.LeaseLeasesResponse,
                    await self.call("lease", "LeaseLeases", rpc_pb2.LeaseLeasesRequest(), timeout))

    async def keep_alive_once(self, lease_id: int,
                              timeout: Optional[float] = None) -> rpc_pb2.LeaseKeepAliveResponse:
        return await keep_alive_once(self, lease_id, timeout)

    def keep_alive(self, lease_id: int,
                   on_response: Optional[Callable[[rpc_pb2.LeaseKeepAliveResponse], None]] = None) -> AsyncKeepAlive:
        """Renew ``lease_id`` in a task until ``await stop()`` (``async with`` works too)."""
        return AsyncKeepAlive(self, lease_id, on_response)
