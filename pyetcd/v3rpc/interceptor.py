"""What runs before every v3 handler, as etcd's gRPC interceptors do.

Every call is counted (grpc_server_started_total, grpc_server_handled_total by gRPC code) and
served as its caller: the auth token in its metadata (``token``) is what the
server's checks and proposals see of it (server/auth/api.py ``caller``).

A learner answers only serializable Range, Status and the Snapshot stream; everything else gets
``etcdserver: rpc not supported for learner`` (UNAVAILABLE), so a client moves to a voter. The
check is made per call: a member is a learner until its promotion is applied.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from pyetcd import errors
from pyetcd.embed.grpc import BIDI, UNARY, CallContext, GrpcMethod
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.server.auth.api import Caller, caller
from pyetcd.server.etcdserver import EtcdServer

STREAMS_FOR_LEARNER = frozenset({"/etcdserverpb.Maintenance/Snapshot"})


def supported_for_learner(request: Any) -> bool:
    """The unary requests a learner serves (etcd 3.5)."""
    kind = type(request)
    return kind is rpc_pb2.StatusRequest or (kind is rpc_pb2.RangeRequest and request.serializable)


def intercept(server: EtcdServer, methods: dict[str, GrpcMethod]) -> dict[str, GrpcMethod]:
    """The same methods, each served as its caller and refusing what a learner does not serve."""
    out = {}
    for path, method in methods.items():
        service, name = path.lstrip("/").split("/")
        labels = (name, service, {UNARY: "unary", BIDI: "bidi_stream"}.get(method.kind, "server_stream"))
        if method.kind == UNARY:
            handler = _unary_gate(server, method.handler, labels)
        else:
            handler = _stream_gate(server, method.handler, labels, learner_ok=path in STREAMS_FOR_LEARNER)
        out[path] = GrpcMethod(method.request_type, handler, method.kind)
    return out


def _code_name(exc: BaseException | None) -> str:
    if exc is None:
        return "OK"
    if isinstance(exc, errors.EtcdError):
        return _CODE_NAMES.get(exc.code, "Unknown")
    return "Canceled" if isinstance(exc, asyncio.CancelledError) else "Unknown"


_CODE_NAMES = {errors.CANCELLED: "Canceled", errors.UNKNOWN: "Unknown", errors.INVALID_ARGUMENT: "InvalidArgument",
               errors.DEADLINE_EXCEEDED: "DeadlineExceeded", errors.NOT_FOUND: "NotFound",
               errors.ALREADY_EXISTS: "AlreadyExists", errors.PERMISSION_DENIED: "PermissionDenied",
               errors.RESOURCE_EXHAUSTED: "ResourceExhausted", errors.FAILED_PRECONDITION: "FailedPrecondition",
               errors.ABORTED: "Aborted", errors.OUT_OF_RANGE: "OutOfRange", errors.UNIMPLEMENTED: "Unimplemented",
               errors.INTERNAL: "Internal", errors.UNAVAILABLE: "Unavailable", errors.DATA_LOSS: "DataLoss",
               errors.UNAUTHENTICATED: "Unauthenticated"}


def _caller(ctx: CallContext) -> Caller:
    return Caller(token=ctx.metadata.get("token", ""))


def _unary_gate(server: EtcdServer, handler: Any, labels: tuple[str, str, str]) -> Any:
    metrics = server.metrics

    async def gated(request: Any, ctx: CallContext) -> Any:
        metrics.grpc_started.inc(*labels)
        failure: BaseException | None = None
        try:
            if server.is_learner and not supported_for_learner(request):
                raise errors.ErrNotSupportedForLearner
            caller.set(_caller(ctx))  # (each call runs in a task of its own: this is its context)
            return await handler(request, ctx)
        except BaseException as e:
            failure = e
            raise
        finally:
            metrics.grpc_handled.inc(_code_name(failure), *labels)
    return gated


def _stream_gate(server: EtcdServer, handler: Any, labels: tuple[str, str, str], learner_ok: bool) -> Any:
    def gated(requests: Any, ctx: CallContext) -> AsyncIterator[Any]:
        # decided when the stream opens
        if server.is_learner and not learner_ok:
            return _refused()
        return _as_caller(server, labels, _caller(ctx), lambda: handler(requests, ctx))
    return gated


async def _as_caller(server: EtcdServer, labels: tuple[str, str, str], who: Caller,
                     open_stream: Any) -> AsyncIterator[Any]:
    caller.set(who)  # (runs in the stream's own task, which iterates this generator)
    server.metrics.grpc_started.inc(*labels)
    failure: BaseException | None = None
    replies = open_stream()
    try:
        async for reply in replies:
            yield reply
    except BaseException as e:
        failure = e
        raise
    finally:
        server.metrics.grpc_handled.inc(_code_name(failure), *labels)
        aclose = getattr(replies, "aclose", None)
        if aclose is not None:
            await aclose()


async def _refused() -> AsyncIterator[Any]:
    raise errors.ErrNotSupportedForLearner
    yield  # an async generator
