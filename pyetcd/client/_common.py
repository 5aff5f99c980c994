"""What the sync and asyncio clients share: endpoints, request building, error mapping."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional, Protocol, Sequence, Union

import grpc

from pyetcd.errors import EtcdConnectionFailed, EtcdDeadlineExceeded, EtcdError, from_status
from pyetcd.proto.etcdserverpb import rpc_pb2

Bytes = Union[str, bytes]

DEFAULT_DIAL_TIMEOUT = 2.0
DEFAULT_TIMEOUT = 5.0
DEADLINE_MESSAGE = "context deadline exceeded"
# Raw stubs exposed on the clients, by attribute name.
STUBS = {
    "kv": "KVStub",
    "watch": "WatchStub",
    "lease": "LeaseStub",
    "cluster": "ClusterStub",
    "maintenance": "MaintenanceStub",
    "auth": "AuthStub",
}


def channel_options(dial_timeout: float) -> list[tuple[str, int]]:
    """Connection knobs close to etcd's Go client (keepalive 2s/6s, 2 MiB send, unlimited receive).

    gRPC gives up a connection attempt after max(backoff, min_reconnect_backoff): setting the
    latter to the dial timeout makes a call on an unreachable endpoint fail (UNAVAILABLE) after
    dial_timeout, so the client moves on to the next endpoint.
    """
    return [
        ("grpc.keepalive_time_ms", 2000),
        ("grpc.keepalive_timeout_ms", 6000),
        ("grpc.max_send_message_length", 2 * 1024 * 1024),
        ("grpc.max_receive_message_length", -1),
        ("grpc.min_reconnect_backoff_ms", max(int(dial_timeout * 1000), 1)),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 500),
    ]


def to_bytes(value: Bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def grpc_target(endpoint: str) -> tuple[str, str]:
    """'http://host:port', 'https://host:port' or 'host:port' -> ('host:port', scheme or '')."""
    for scheme in ("http", "https"):
        if endpoint.startswith(scheme + "://"):
            return endpoint[len(scheme) + 3:], scheme
    return endpoint, ""


@dataclass
class TLS:
    """PEM bytes for TLS: CA bundle to verify the server (None: the system's), client certificate
    and key; ``server_name``: the name to verify the server's certificate for (default: the
    endpoint's host)."""
    ca_cert: Optional[bytes] = None
    cert: Optional[bytes] = None
    key: Optional[bytes] = None
    server_name: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca_cert, self.key, self.cert)


def channel_security(endpoint: str, tls: Optional[TLS], dial_timeout: float
                     ) -> tuple[str, Optional[grpc.ChannelCredentials], list[tuple[str, Union[str, int]]]]:
    """Target, credentials (None: plaintext) and options of the channel to ``endpoint``, as the Go
    client picks them: http:// is always plaintext, https:// always TLS (the system's CAs without
    ``tls``), a bare host:port uses TLS when ``tls`` is given."""
    target, scheme = grpc_target(endpoint)
    options: list[tuple[str, Union[str, int]]] = list(channel_options(dial_timeout))
    if scheme == "http" or (scheme == "" and tls is None):
        return target, None, options
    tls = tls or TLS()
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return target, tls.credentials(), options


AUTH_NOT_ENABLED = "etcdserver: authentication is not enabled"
# a token the server no longer takes: log in again (a JWT made before an auth change is "old")
STALE_TOKEN = frozenset({"etcdserver: invalid auth token", "etcdserver: revision of auth store is old",
                         "auth: revision in header is old"})


def prefix_end(key: bytes) -> bytes:
    """The range_end that selects every key starting with ``key`` (etcd's WithPrefix)."""
    end = bytearray(key)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"


def range_request(key: Bytes, range_end: Bytes = b"", **opts: Any) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(key=to_bytes(key), range_end=to_bytes(range_end), **opts)


def next_page(request: rpc_pb2.RangeRequest, resp: rpc_pb2.RangeResponse) -> Optional[rpc_pb2.RangeRequest]:
    """The request for the page after ``resp`` (None: it was the last), at the first page's revision
    so the pages are one consistent view, as the Go client's paginated lists are."""
    if not resp.more or not resp.kvs:
        return None
    nxt = rpc_pb2.RangeRequest()
    nxt.CopyFrom(request)
    nxt.key = resp.kvs[-1].key + b"\x00"
    nxt.revision = resp.header.revision
    return nxt


def put_request(key: Bytes, value: Bytes, lease: int = 0, prev_kv: bool = False,
                ignore_value: bool = False, ignore_lease: bool = False) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(key=to_bytes(key), value=to_bytes(value), lease=lease, prev_kv=prev_kv,
                              ignore_value=ignore_value, ignore_lease=ignore_lease)


def delete_request(key: Bytes, range_end: Bytes = b"", prev_kv: bool = False) -> rpc_pb2.DeleteRangeRequest:
    return rpc_pb2.DeleteRangeRequest(key=to_bytes(key), range_end=to_bytes(range_end), prev_kv=prev_kv)


Op = Union[rpc_pb2.RangeRequest, rpc_pb2.PutRequest, rpc_pb2.DeleteRangeRequest, rpc_pb2.TxnRequest,
           rpc_pb2.RequestOp]


def request_op(op: Op) -> rpc_pb2.RequestOp:
    """Wrap a Range/Put/DeleteRange/Txn request (or pass a RequestOp through)."""
    if isinstance(op, rpc_pb2.RequestOp):
        return op
    if isinstance(op, rpc_pb2.RangeRequest):
        return rpc_pb2.RequestOp(request_range=op)
    if isinstance(op, rpc_pb2.PutRequest):
        return rpc_pb2.RequestOp(request_put=op)
    if isinstance(op, rpc_pb2.DeleteRangeRequest):
        return rpc_pb2.RequestOp(request_delete_range=op)
    return rpc_pb2.RequestOp(request_txn=op)


def txn_request(compare: Iterable[rpc_pb2.Compare] = (), success: Iterable[Op] = (),
                failure: Iterable[Op] = ()) -> rpc_pb2.TxnRequest:
    return rpc_pb2.TxnRequest(compare=list(compare), success=[request_op(o) for o in success],
                              failure=[request_op(o) for o in failure])


# Calls the Go client retries on another endpoint when a member answers UNAVAILABLE with an etcd
# error ("etcdserver: no leader", ...): the read-only ones (its "repeatable" retry policy). Writes
# are only retried when they never reached a member (a connection error).
REPEATABLE = frozenset({
    ("kv", "Range"), ("cluster", "MemberList"),
    ("maintenance", "Alarm"), ("maintenance", "Status"), ("maintenance", "Hash"), ("maintenance", "HashKV"),
    ("lease", "LeaseGrant"), ("lease", "LeaseRevoke"), ("lease", "LeaseTimeToLive"), ("lease", "LeaseLeases"),
    ("auth", "AuthStatus"), ("auth", "UserGet"), ("auth", "UserList"), ("auth", "RoleGet"), ("auth", "RoleList"),
})


def try_next_endpoint(service: str, method: str, err: grpc.RpcError) -> bool:
    """Whether a failed call goes on to the next endpoint (until its deadline) instead of failing."""
    if err.code() != grpc.StatusCode.UNAVAILABLE:
        return False
    return is_connection_error(err) or (service, method) in REPEATABLE


def is_connection_error(err: grpc.RpcError) -> bool:
    """UNAVAILABLE from the transport (not etcd's own 'etcdserver: ...' UNAVAILABLE errors)."""
    return err.code() == grpc.StatusCode.UNAVAILABLE and not (err.details() or "").startswith("etcdserver:")


class CallState(Protocol):
    """What a failed call reads and notes on its client."""
    _token: Optional[str]
    last_connect_error: str
    last_connect_details: str


def on_call_error(client: CallState, service: str, method: str, err: grpc.RpcError, endpoint: str,
                  retried_auth: bool) -> bool:
    """What a failed call does next (shared by the sync and asyncio clients): raise the mapped
    error, or return so the caller continues — with the next endpoint (a connection failure is
    noted on ``client``), or once more after dropping an expired token. Returns the new
    ``retried_auth``."""
    if not try_next_endpoint(service, method, err):
        if err.details() in STALE_TOKEN and client._token and not retried_auth:
            client._token = None  # expired token: log in again
            return True
        raise map_error(err, client.last_connect_error) from None
    if is_connection_error(err):
        client.last_connect_error = endpoint
        client.last_connect_details = err.details() or ""
    return retried_auth


def map_error(err: grpc.RpcError, last_connect_error: str = "") -> EtcdError:
    code = err.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        exc = EtcdDeadlineExceeded(code.value[0], DEADLINE_MESSAGE)
        exc.connect_error = last_connect_error
        return exc
    if is_connection_error(err):
        return EtcdConnectionFailed(code.value[0], err.details() or "connection failed")
    return from_status(code.value[0], err.details() or "")


def deadline_error(last_connect_error: str) -> EtcdDeadlineExceeded:
    exc = EtcdDeadlineExceeded(grpc.StatusCode.DEADLINE_EXCEEDED.value[0], DEADLINE_MESSAGE)
    exc.connect_error = last_connect_error
    return exc


def call_targets(endpoints: list[str], current: int, endpoint: Optional[str]) -> list[str]:
    """The endpoints one round of a call tries: all, starting at the current one, or just ``endpoint``."""
    if endpoint is not None:
        return [endpoint]
    n = len(endpoints)
    return [endpoints[(current + i) % n] for i in range(n)]


def normalize_endpoints(endpoints: Union[str, Sequence[str]]) -> list[str]:
    eps = [endpoints] if isinstance(endpoints, str) else list(endpoints)
    if not eps:
        raise ValueError("at least one endpoint is required")
    return eps
