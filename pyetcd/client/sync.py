"""The blocking etcd v3 client: KV, watch, lease (raw stubs for the other services)."""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union, cast

import grpc
from google.protobuf.message import Message

from pyetcd.client import _common as c
from pyetcd.client.auth import AuthAPI
from pyetcd.client.lease import KeepAlive, keep_alive_once
from pyetcd.client.maintenance import ClusterMaintenanceAPI, SnapshotFile
from pyetcd.client.watch import Watch, run_callback
from pyetcd.client.watch_state import WatchCursor
from pyetcd.errors import EtcdError
from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc


class Client(AuthAPI, ClusterMaintenanceAPI):
    """etcd v3 client over grpcio.

    Endpoints are tried in order; on a connection failure the next one is used, round after
    round, until the call's deadline (``timeout``). ``dial_timeout`` bounds each connection
    attempt. Errors are raised as ``pyetcd.errors.EtcdError`` (``EtcdConnectionFailed`` /
    ``EtcdDeadlineExceeded`` when no endpoint could serve the call in time).
    """

    def __init__(self, endpoints: Union[str, Sequence[str]] = ("127.0.0.1:2379",),
                 dial_timeout: float = c.DEFAULT_DIAL_TIMEOUT, timeout: float = c.DEFAULT_TIMEOUT,
                 user: str = "", password: str = "", tls: Optional[c.TLS] = None) -> None:
        self.endpoints = c.normalize_endpoints(endpoints)
        self.user, self.password, self.tls = user, password, tls
        self._token: Optional[str] = None
        self.auth_errors: list[EtcdError] = []  # non-fatal Authenticate failures (auth not enabled)
        self.dial_timeout = dial_timeout
        self.timeout = timeout
        self._channels: dict[str, grpc.Channel] = {}
        self._current = 0
        self.last_connect_error = ""  # endpoint of the last connection failure, and gRPC's text for it
        self.last_connect_details = ""

    # -- connection management ------------------------------------------------------------
    def _channel(self, endpoint: str) -> grpc.Channel:
        ch = self._channels.get(endpoint)
        if ch is None:
            target, creds, options = c.channel_security(endpoint, self.tls, self.dial_timeout)
            if creds is not None:
                ch = grpc.secure_channel(target, creds, options=options)
            else:
                ch = grpc.insecure_channel(target, options=options)
            self._channels[endpoint] = ch
        return ch

    def _stub(self, endpoint: str, service: str) -> Any:
        return getattr(rpc_pb2_grpc, c.STUBS[service])(self._channel(endpoint))

    def snapshot(self, timeout: Optional[float] = None) -> Iterator[bytes]:
        """The current endpoint's database as Maintenance.Snapshot streams it: its blobs in
        order, the last one the SHA-256 of all before it (what etcdutl checks on restore)."""
        endpoint = self.endpoints[self._current]
        metadata = self._stream_metadata(endpoint)
        replies = self._stub(endpoint, "maintenance").Snapshot(rpc_pb2.SnapshotRequest(), timeout=timeout,
                                                               metadata=metadata or None)
        try:
            for resp in replies:
                yield resp.blob
        except grpc.RpcError as err:
            raise c.map_error(err, self.last_connect_error) from None

    def snapshot_save(self, path: str, timeout: Optional[float] = None) -> int:
        """Save the current endpoint's database to ``path`` as ``etcdctl snapshot save`` does (see
        ``SnapshotFile``); its size in bytes."""
        with SnapshotFile(path) as f:
            for blob in self.snapshot(timeout):
                f.add(blob)
            f.close()
            f.commit()
        return f.size

    def __getattr__(self, name: str) -> Any:
        if name in c.STUBS:
            return self._stub(self.endpoints[self._current], name)
        raise AttributeError(name)

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, service: str, method: str, request: Message, timeout: Optional[float] = None,
             endpoint: Optional[str] = None) -> Any:
        """Run one unary RPC with failover across the endpoints until the deadline.

        With ``endpoint`` the call goes to that member only (as the Go client's per-endpoint
        Maintenance calls), waiting for it until the deadline.
        """
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
                        self._authenticate(ep, deadline)
                    metadata = (("token", self._token),) if self._token else None
                    resp = getattr(self._stub(ep, service), method)(
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
            time.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, 0.5)

    def _authenticate(self, endpoint: str, deadline: float) -> None:
        """Get a token for user/password; 'authentication is not enabled' is noted, not raised."""
        req = rpc_pb2.AuthenticateRequest(name=self.user, password=self.password)
        try:
            self._token = (self._stub(endpoint, "auth").Authenticate(req, timeout=deadline - time.monotonic())).token
        except grpc.RpcError as err:
            if c.is_connection_error(err):
                raise
            exc = c.map_error(err)
            if err.details() != c.AUTH_NOT_ENABLED:
                exc.during_auth = True  # etcdctl exits 2 (bad connection) for these
                raise exc from None
            self.auth_errors.append(exc)

    def _stream_metadata(self, endpoint: str) -> tuple[tuple[str, str], ...]:
        """Metadata for a stream on ``endpoint``: the auth token (logging in first if needed)."""
        if self.user and self.password and self._token is None and not self.auth_errors:
            self._authenticate(endpoint, time.monotonic() + self.timeout)
        return (("token", self._token),) if self._token else ()

    # -- KV ---------------------------------------------------------------------------------
    def range(self, request: rpc_pb2.RangeRequest, timeout: Optional[float] = None) -> rpc_pb2.RangeResponse:
        return cast(rpc_pb2.RangeResponse, self.call("kv", "Range", request, timeout))

    def get(self, key: c.Bytes, range_end: c.Bytes = b"", timeout: Optional[float] = None,
            **opts: Any) -> rpc_pb2.RangeResponse:
        return self.range(c.range_request(key, range_end, **opts), timeout)

    def get_pages(self, key: c.Bytes, range_end: c.Bytes = b"", prefix: bool = False, page_size: int = 1000,
            timeout: Optional[float] = None, **opts: Any) -> Iterator[rpc_pb2.RangeResponse]:
        """The range in pages of ``page_size`` keys, each a RangeResponse, following ``more`` to the
        end; every page is read at the first page's revision."""
        end = c.prefix_end(c.to_bytes(key)) if prefix else range_end
        req: Optional[rpc_pb2.RangeRequest] = c.range_request(key, end, limit=page_size, **opts)
        while req is not None:
            resp = self.range(req, timeout)
            yield resp
            req = c.next_page(req, resp)

    def put(self, key: c.Bytes, value: c.Bytes = b"", lease: int = 0, prev_kv: bool = False,
            ignore_value: bool = False, ignore_lease: bool = False,
            timeout: Optional[float] = None) -> rpc_pb2.PutResponse:
        req = c.put_request(key, value, lease, prev_kv, ignore_value, ignore_lease)
        return cast(rpc_pb2.PutResponse, self.call("kv", "Put", req, timeout))

    def delete(self, key: c.Bytes, range_end: c.Bytes = b"", prev_kv: bool = False,
               timeout: Optional[float] = None) -> rpc_pb2.DeleteRangeResponse:
        return cast(rpc_pb2.DeleteRangeResponse,
                    self.call("kv", "DeleteRange", c.delete_request(key, range_end, prev_kv), timeout))

    def txn(self, request: Union[rpc_pb2.TxnRequest, None] = None, compare: Iterable[rpc_pb2.Compare] = (),
            success: Iterable[c.Op] = (), failure: Iterable[c.Op] = (),
            timeout: Optional[float] = None) -> rpc_pb2.TxnResponse:
        req = request if request is not None else c.txn_request(compare, success, failure)
        return cast(rpc_pb2.TxnResponse, self.call("kv", "Txn", req, timeout))

    def compact(self, revision: int, physical: bool = False,
                timeout: Optional[float] = None) -> rpc_pb2.CompactionResponse:
        req = rpc_pb2.CompactionRequest(revision=revision, physical=physical)
        return cast(rpc_pb2.CompactionResponse, self.call("kv", "Compact", req, timeout))

    # -- watch ------------------------------------------------------------------------------
    def watch(self, key: c.Bytes, range_end: c.Bytes = b"", prefix: bool = False, start_revision: int = 0,
              prev_kv: bool = False, filters: Iterable[str] = (), progress_notify: bool = False,
              require_leader: bool = True) -> Watch:
        """Watch ``key`` (or [key, range_end), or every key under ``key`` with ``prefix``) from
        ``start_revision`` (0: from now). ``filters``: "noput" and/or "nodelete". Returns a ``Watch``:
        iterate it for WatchResponses, ``cancel()`` it, ``request_progress()``. It resumes after a
        reconnect from the last revision delivered; see ``pyetcd.client.watch``."""
        end = c.prefix_end(c.to_bytes(key)) if prefix else range_end
        cursor = WatchCursor(key, end, start_revision, prev_kv, filters, progress_notify)
        return Watch(self, cursor, require_leader)

    def add_watch_callback(self, key: c.Bytes, callback: Callable[[rpc_pb2.WatchResponse], None],
                           on_error: Optional[Callable[[Exception], None]] = None, **opts: Any) -> Watch:
        """``watch(key, **opts)`` delivered to ``callback(resp)`` on a background thread (errors to
        ``on_error(exc)``); ``cancel()`` the returned Watch to stop."""
        watch = self.watch(key, **opts)
        run_callback(watch, callback, on_error)
        return watch

    # -- lease ------------------------------------------------------------------------------
    def lease_grant(self, ttl: int, lease_id: int = 0, timeout: Optional[float] = None) -> rpc_pb2.LeaseGrantResponse:
        return cast(rpc_pb2.LeaseGrantResponse,
                    self.call("lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=ttl, ID=lease_id), timeout))

    def lease_revoke(self, lease_id: int, timeout: Optional[float] = None) -> rpc_pb2.LeaseRevokeResponse:
        return cast(rpc_pb2.LeaseRevokeResponse,
                    self.call("lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=lease_id), timeout))

    def lease_time_to_live(self, lease_id: int, keys: bool = False,
                           timeout: Optional[float] = None) -> rpc_pb2.LeaseTimeToLiveResponse:
        """TTL left (-1: the lease is gone), granted TTL and, with ``keys``, the keys attached."""
        req = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
        return cast(rpc_pb2.LeaseTimeToLiveResponse, self.call("lease", "LeaseTimeToLive", req, timeout))

    def leases(self, timeout: Optional[float] = None) -> rpc_pb2.LeaseLeasesResponse:
        return cast(rpc_pb2.LeaseLeasesResponse,
                    self.call("lease", "LeaseLeases", rpc_pb2.LeaseLeasesRequest(), timeout))

    def keep_alive_once(self, lease_id: int, timeout: Optional[float] = None) -> rpc_pb2.LeaseKeepAliveResponse:
        """Renew once; a lease that is gone raises EtcdError NotFound."""
        return keep_alive_once(self, lease_id, timeout)

    def keep_alive(self, lease_id: int, on_response: Optional[Callable[[rpc_pb2.LeaseKeepAliveResponse], None]] = None
                   ) -> KeepAlive:
        """Renew ``lease_id`` on a background thread until ``stop()`` (a context manager too)."""
        return KeepAlive(self, lease_id, on_response)
