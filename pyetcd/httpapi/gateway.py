"""The v3 JSON gateway (etcd's grpc-gateway): ``POST /v3/<path>`` with a JSON request, answered
by the same gRPC method the client port serves (interceptors, auth and all), in JSON.

JSON as grpc-gateway 1.x marshals it for etcd 3.5: proto field names, 64-bit integers as
strings, bytes as base64, enums by name, fields at their default left out. Errors are
``{"error": msg, "code": grpc code, "message": msg}`` with grpc-gateway's HTTP status for the
code; requests that do not decode get Go's encoding/json texts. The ``Authorization`` header
carries the auth token. ``/v3/watch`` and ``/v3/lease/keepalive`` stream ``{"result": ...}`` lines.
``/v3beta/`` is an alias, as in etcd 3.5.
"""
from __future__ import annotations

import http
import json
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.message import Message

from pyetcd import errors
from pyetcd.embed.grpc import SERVER_STREAM, UNARY, CallContext, Framed, GrpcMethod
from pyetcd.embed.http1 import HttpRequest, HttpResponse
from pyetcd.httpapi.gojson import GoJsonError, Raw, decode_stream, fill
from pyetcd.proto.etcdserverpb import rpc_pb2

# etcd answers every request of its client HTTP mux with these (its CORS wrapper)
CORS = [("Access-Control-Allow-Headers", "accept, content-type, authorization"),
        ("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"),
        ("Access-Control-Allow-Origin", "*")]
_JSON = [*CORS, ("Content-Type", "application/json")]
_OK = [*_JSON, ("Grpc-Metadata-Content-Type", "application/grpc")]   # the gRPC reply's header, forwarded
_TEXT = [*CORS, ("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")]
_PREFIXES = ("/v3/", "/v3beta/")

# gateway path -> gRPC path (etcd 3.5's google.api.http annotations)
ROUTES = {
    "kv/range": "KV/Range", "kv/put": "KV/Put", "kv/deleterange": "KV/DeleteRange", "kv/txn": "KV/Txn",
    "kv/compaction": "KV/Compact", "watch": "Watch/Watch",
    "lease/grant": "Lease/LeaseGrant", "lease/revoke": "Lease/LeaseRevoke", "kv/lease/revoke": "Lease/LeaseRevoke",
    "lease/keepalive": "Lease/LeaseKeepAlive", "lease/timetolive": "Lease/LeaseTimeToLive",
    "kv/lease/timetolive": "Lease/LeaseTimeToLive", "lease/leases": "Lease/LeaseLeases",
    "kv/lease/leases": "Lease/LeaseLeases",
    "cluster/member/add": "Cluster/MemberAdd", "cluster/member/remove": "Cluster/MemberRemove",
    "cluster/member/update": "Cluster/MemberUpdate", "cluster/member/list": "Cluster/MemberList",
    "cluster/member/promote": "Cluster/MemberPromote",
    "maintenance/alarm": "Maintenance/Alarm", "maintenance/status": "Maintenance/Status",
    "maintenance/defragment": "Maintenance/Defragment", "maintenance/hash": "Maintenance/HashKV",
    "maintenance/snapshot": "Maintenance/Snapshot", "maintenance/transfer-leadership": "Maintenance/MoveLeader",
    "maintenance/downgrade": "Maintenance/Downgrade",
    "auth/enable": "Auth/AuthEnable", "auth/disable": "Auth/AuthDisable", "auth/status": "Auth/AuthStatus",
    "auth/authenticate": "Auth/Authenticate", "auth/user/add": "Auth/UserAdd", "auth/user/get": "Auth/UserGet",
    "auth/user/list": "Auth/UserList", "auth/user/delete": "Auth/UserDelete",
    "auth/user/changepw": "Auth/UserChangePassword", "auth/user/grant": "Auth/UserGrantRole",
    "auth/user/revoke": "Auth/UserRevokeRole", "auth/role/add": "Auth/RoleAdd", "auth/role/get": "Auth/RoleGet",
    "auth/role/list": "Auth/RoleList", "auth/role/delete": "Auth/RoleDelete",
    "auth/role/grant": "Auth/RoleGrantPermission", "auth/role/revoke": "Auth/RoleRevokePermission",
}

# grpc-gateway 1.x's HTTPStatusFromCode
_HTTP_STATUS = {errors.OK: 200, errors.CANCELLED: 408, errors.UNKNOWN: 500, errors.INVALID_ARGUMENT: 400,
                errors.DEADLINE_EXCEEDED: 504, errors.NOT_FOUND: 404, errors.ALREADY_EXISTS: 409,
                errors.PERMISSION_DENIED: 403, errors.UNAUTHENTICATED: 401, errors.RESOURCE_EXHAUSTED: 429,
                errors.FAILED_PRECONDITION: 400, errors.ABORTED: 409, errors.OUT_OF_RANGE: 400,
                errors.UNIMPLEMENTED: 501, errors.INTERNAL: 500, errors.UNAVAILABLE: 503, errors.DATA_LOSS: 500}
_FRAME = struct.Struct(">BI")


def is_gateway_path(path: str) -> bool:
    return path == "/v3" or path.startswith(_PREFIXES)


def to_json(msg: Message) -> bytes:
    return json.dumps(json_format.MessageToDict(msg, preserving_proto_field_name=True),
                      separators=(",", ":")).encode()


def _error(code: int, message: str) -> HttpResponse:
    body = json.dumps({"error": message, "code": code, "message": message}, separators=(",", ":"))
    return HttpResponse(_HTTP_STATUS.get(code, 500), _JSON, body.encode())


def _stream_error(e: errors.EtcdError) -> bytes:
    """grpc-gateway's error chunk, ending a stream."""
    status = _HTTP_STATUS.get(e.code, 500)
    return json.dumps({"error": {"grpc_code": e.code, "http_code": status, "message": e.message,
                                 "http_status": http.HTTPStatus(status).phrase}}, separators=(",", ":")).encode()


def _message(method: GrpcMethod, raw: Raw | None) -> Message:
    req = method.request_type()
    if raw is not None:
        fill(req, raw)
    return req


def _values(body: bytes) -> Iterator[Raw]:
    return decode_stream(body.decode("utf-8", errors="replace"))


def _messages(framed: Framed, response_type: Any) -> list[Message]:
    out, data, at = [], bytes(framed), 0
    while at < len(data):
        _, size = _FRAME.unpack_from(data, at)
        out.append(response_type.FromString(data[at + _FRAME.size:at + _FRAME.size + size]))
        at += _FRAME.size + size
    return out


async def _requests(first: Message | None, more: Iterator[Raw], method: GrpcMethod) -> AsyncIterator[Message]:
    """A client stream from the body's requests (none for an empty body), as far as they decode."""
    if first is None:
        return
    yield first
    try:
        for raw in more:
            yield _message(method, raw)
    except GoJsonError:
        return


def _lines(reply: Any, response_type: Any) -> list[bytes]:
    """A reply's ``{"result": ...}`` lines, one HTTP chunk each as etcd sends them (clients such
    as etcd3gw read a chunk as one message)."""
    msgs = _messages(reply, response_type) if type(reply) is Framed else [reply]
    return [b'{"result":' + to_json(m) + b"}\n" for m in msgs]


async def _rest(first: list[bytes], replies: Any, response_type: Any) -> AsyncIterator[bytes]:
    """The response body: ``first``, then the replies still to come; closing it ends the RPC."""
    try:
        for chunk in first:
            yield chunk
        async for reply in replies:
            for chunk in _lines(reply, response_type):
                yield chunk
    except errors.EtcdError as e:
        yield _stream_error(e)
    finally:
        await replies.aclose()


async def _stream(method: GrpcMethod, target: str, body: bytes, ctx: CallContext) -> HttpResponse:
    """A streaming RPC: the status waits for the first reply (or error), as in etcd."""
    values = _values(body)
    try:
        raw = next(values, None)
        first = None if raw is None and method.kind != SERVER_STREAM else _message(method, raw)
    except GoJsonError as e:
        return _error(errors.UNKNOWN, str(e))
    incoming = first if method.kind == SERVER_STREAM else _requests(first, values, method)
    replies = method.handler(incoming, ctx).__aiter__()
    response_type = _response_type(target)
    try:
        reply = await replies.__anext__()
    except StopAsyncIteration:
        return HttpResponse(200, _JSON, _rest([], replies, response_type))
    except errors.EtcdError as e:
        return HttpResponse(_HTTP_STATUS.get(e.code, 500), _JSON, _rest([_stream_error(e)], replies, response_type))
    return HttpResponse(200, _OK, _rest(_lines(reply, response_type), replies, response_type))


def make_gateway(methods: dict[str, GrpcMethod]):
    """The gateway's handler: any request whose path is_gateway_path."""
    async def handle(req: HttpRequest) -> HttpResponse:
        if req.path == "/v3":
            return HttpResponse(301, [*CORS, ("Location", "/v3/")], b"")
        if req.method == "OPTIONS":     # a CORS preflight
            return HttpResponse(200, CORS, b"")
        path = req.path[len(_PREFIXES[0 if req.path.startswith(_PREFIXES[0]) else 1]):]
        target = ROUTES.get(path, "")
        method = methods.get(f"/etcdserverpb.{target}") if target else None
        if method is None:
            return HttpResponse(404, _TEXT, b"Not Found\n")
        if req.method != "POST":
            return HttpResponse(405, _TEXT, b"Method Not Allowed\n")
        token = req.headers.get("authorization")
        ctx = CallContext({"token": token} if token is not None else {}, None, None, f"/etcdserverpb.{target}")
        if method.kind != UNARY:
            return await _stream(method, target, req.body, ctx)
        try:
            request = _message(method, next(_values(req.body), None))
        except GoJsonError as e:
            return _error(errors.INVALID_ARGUMENT, str(e))
        try:
            return HttpResponse(200, _OK, to_json(await method.handler(request, ctx)))
        except errors.EtcdError as e:
            return _error(e.code, e.message)
    return handle


def _response_type(target: str) -> Any:
    service, name = target.split("/")
    rpc = rpc_pb2.DESCRIPTOR.services_by_name[service].methods_by_name[name]
    return message_factory.GetMessageClass(rpc.output_type)
