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

import base64
import binascii
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from pyetcd import errors
from pyetcd.embed.grpc import UNARY, CallContext, Framed, GrpcMethod
from pyetcd.embed.http1 import HttpRequest, HttpResponse

_JSON = [("Content-Type", "application/json")]
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]

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
_B64 = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_FRAME = struct.Struct(">BI")


def gateway_path(path: str) -> str | None:
    """The gateway route of an HTTP path (``kv/range``), None when it is not the gateway's."""
    for prefix in ("/v3/", "/v3beta/"):
        if path.startswith(prefix):
            return path[len(prefix):]
    return None


def to_json(msg: Message) -> bytes:
    return json.dumps(json_format.MessageToDict(msg, preserving_proto_field_name=True),
                      separators=(",", ":")).encode()


def _error(code: int, message: str) -> HttpResponse:
    body = json.dumps({"error": message, "code": code, "message": message}, separators=(",", ":"))
    return HttpResponse(_HTTP_STATUS.get(code, 500), _JSON, body.encode())


def _go_json_error(text: str, err: json.JSONDecodeError) -> str:
    """encoding/json's words for a body that is not JSON."""
    rest = text[err.pos:].lstrip()
    if not rest:
        return "unexpected EOF"
    return f"invalid character {rest[0]!r} looking for beginning of value"


def _check_bytes(value: Any, field: Any) -> None:
    """Go's base64 error for a bytes field that is not base64 (its first bad byte)."""
    if not isinstance(value, str):
        return
    data = value.encode()
    for i, b in enumerate(data):
        if b not in _B64 and not (b == ord("=") and i >= len(data.rstrip(b"=")) and len(data) % 4 == 0):
            raise errors.EtcdError(errors.INVALID_ARGUMENT, f"illegal base64 data at input byte {i}")
    try:
        base64.b64decode(data, validate=True)
    except binascii.Error:
        raise errors.EtcdError(errors.INVALID_ARGUMENT, f"illegal base64 data at input byte {len(data)}") from None


def _check(body: Any, descriptor: Any) -> None:
    """What grpc-gateway's decoder refuses before the request is built: bad base64, enum names."""
    if not isinstance(body, dict):
        return
    for name, value in body.items():
        field = descriptor.fields_by_name.get(name) or descriptor.fields_by_camelcase_name.get(name)
        if field is None:
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            if field.type == field.TYPE_BYTES:
                _check_bytes(v, field)
            elif field.type == field.TYPE_ENUM and isinstance(v, str) and field.enum_type.values_by_name.get(v) is None:
                raise errors.EtcdError(errors.INVALID_ARGUMENT, f'unknown value "\\"{v}\\"" for enum '
                                                                f'{field.enum_type.full_name}')
            elif field.type == field.TYPE_MESSAGE:
                _check(v, field.message_type)


def _request(method: GrpcMethod, body: bytes) -> Message:
    text = body.decode(errors="replace") or "{}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise errors.EtcdError(errors.INVALID_ARGUMENT, _go_json_error(text, e)) from None
    req = method.request_type()
    _check(data, req.DESCRIPTOR)
    try:
        json_format.ParseDict(data, req, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise errors.EtcdError(errors.INVALID_ARGUMENT, str(e)) from None
    return req


def _messages(framed: Framed, response_type: Any) -> list[Message]:
    out, data, at = [], bytes(framed), 0
    while at < len(data):
        _, size = _FRAME.unpack_from(data, at)
        out.append(response_type.FromString(data[at + _FRAME.size:at + _FRAME.size + size]))
        at += _FRAME.size + size
    return out


async def _one(req: Message) -> AsyncIterator[Message]:
    yield req


async def _stream(replies: AsyncIterator[Any], response_type: Any) -> AsyncIterator[bytes]:
    try:
        async for reply in replies:
            for msg in (_messages(reply, response_type) if type(reply) is Framed else [reply]):
                yield b'{"result":' + to_json(msg) + b"}\n"
    except errors.EtcdError as e:
        yield json.dumps({"error": {"grpc_code": e.code, "http_code": _HTTP_STATUS.get(e.code, 500),
                                    "message": e.message, "http_status": ""}}).encode() + b"\n"


def make_gateway(methods: dict[str, GrpcMethod]):
    async def handle(req: HttpRequest, path: str) -> HttpResponse:
        target = ROUTES.get(path)
        method = methods.get(f"/etcdserverpb.{target}") if target else None
        if method is None:
            return HttpResponse(404, _TEXT, b"Not Found\n")
        if req.method != "POST":
            return HttpResponse(405, _TEXT, b"Method Not Allowed\n")
        ctx = CallContext({"token": req.headers["authorization"]} if "authorization" in req.headers else {},
                          None, None, f"/etcdserverpb.{target}")
        try:
            request = _request(method, req.body)
            if method.kind == UNARY:
                return HttpResponse(200, _JSON, to_json(await method.handler(request, ctx)))
        except errors.EtcdError as e:
            return _error(e.code, e.message)
        response_type = _response_type(target)
        incoming = _one(request) if target != "Maintenance/Snapshot" else request
        replies = method.handler(incoming, ctx)
        return HttpResponse(200, _JSON, _stream(replies, response_type))
    return handle


def _response_type(target: str) -> Any:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    service, name = target.split("/")
    rpc = rpc_pb2.DESCRIPTOR.services_by_name[service].methods_by_name[name]
    from google.protobuf import message_factory
    return message_factory.GetMessageClass(rpc.output_type)
