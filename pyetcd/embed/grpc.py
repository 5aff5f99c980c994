"""gRPC over our HTTP/2 streams: message framing, status and trailers, method dispatch.

Wire format (gRPC's PROTOCOL-HTTP2): each message is a 5-byte prefix (compressed flag, big-endian
length) and the protobuf bytes. A reply is HEADERS (:status 200, content-type), DATA, and
trailers carrying grpc-status / grpc-message; an error before any message is one HEADERS frame
with all of them ("trailers-only"), as grpc-go servers send it.

Handlers run as tasks, one per call, so one slow call never holds up the others; a reset from
the client cancels the task.
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import struct
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from google.protobuf.message import DecodeError, Message

from pyetcd import errors
from pyetcd.errors import EtcdError

from .h2 import H2Protocol, NO_HANDLER, Stream, StreamHandler, encode_headers

log = logging.getLogger("pyetcd.embed")

_PREFIX = struct.Struct(">BI")

UNARY = "unary"
SERVER_STREAM = "server_stream"
BIDI = "bidi"


@dataclass
class GrpcMethod:
    request_type: type[Message]
    handler: Callable[..., Any]
    kind: str = UNARY          # 'unary' | 'server_stream' | 'bidi'


class CallContext:
    """What a handler knows about its call besides the request."""

    __slots__ = ("metadata", "peer", "peer_cert", "method")

    def __init__(self, metadata: dict[str, str], peer: tuple | None, peer_cert: dict | None, method: str) -> None:
        self.metadata = metadata       # the request's non-pseudo headers, lower-case names
        self.peer = peer               # (host, port)
        self.peer_cert = peer_cert     # ssl's getpeercert() dict of a TLS client certificate, else None
        self.method = method           # the :path, e.g. "/etcdserverpb.KV/Range"


# ':status 200' is static-table entry 8; content-type is entry 31, sent as a literal without indexing.
RESPONSE_HEADERS = b"\x88\x0f\x10\x10application/grpc"
TRAILERS_OK = encode_headers([("grpc-status", "0")])


def percent_encode(message: str) -> str:
    """grpc-message encoding: UTF-8, every byte outside 0x20-0x7E and '%' itself as %XX."""
    if message.isascii() and message.isprintable() and "%" not in message:
        return message
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in message.encode("utf-8"))


def go_quote(text: str) -> str:
    """Go's %q of a string, as grpc-go formats method names (exact for printable ASCII)."""
    return json.dumps(text)


def status_block(code: int, message: str = "") -> bytes:
    fields = [("grpc-status", str(code))]
    if message:
        fields.append(("grpc-message", percent_encode(message)))
    return encode_headers(fields)


def frame_message(payload: bytes) -> bytes:
    return _PREFIX.pack(0, len(payload)) + payload


class Framed(bytes):
    """What a streaming handler may yield instead of a message: messages already framed
    (frame_message), sent as they are — many replies in one write."""


def _status_of(exc: BaseException, method: str) -> tuple[int, str]:
    if isinstance(exc, EtcdError):
        return exc.code, exc.message
    log.error("gRPC handler %s failed", method, exc_info=exc)
    return errors.UNKNOWN, str(exc)


class GrpcDispatcher:
    """Routes new gRPC streams to the registered methods (keys are wire paths: "/pkg.Service/Method")."""

    def __init__(self, methods: dict[str, GrpcMethod], max_recv_msg_size: int = 4 << 20) -> None:
        self.methods = methods
        self.services = {path.split("/")[1] for path in methods}
        self.max_recv_msg_size = max_recv_msg_size

    def open_call(self, conn: H2Protocol, st: Stream, pseudo: dict[str, str], fields: dict[str, str]) -> StreamHandler:
        path = pseudo.get(":path", "")
        method = self.methods.get(path)
        if method is None:
            conn.send_headers(st, RESPONSE_HEADERS + status_block(*self._unknown(path)), end_stream=True)
            return NO_HANDLER
        ctx = CallContext(dict(fields), conn.peer, conn.peer_cert, path)
        return GrpcCall(conn, st, method, ctx, self.max_recv_msg_size)

    def _unknown(self, path: str) -> tuple[int, str]:
        # grpc-go's codes and wording (server.go handleStream): the method is what follows the last '/'
        service, slash, name = (path[1:] if path.startswith("/") else path).rpartition("/")
        if not slash:
            return errors.RESOURCE_EXHAUSTED, f"malformed method name: {go_quote(path)}"
        if service not in self.services:
            return errors.UNIMPLEMENTED, f"unknown service {service}"
        return errors.UNIMPLEMENTED, f"unknown method {name} for service {service}"


class GrpcCall:
    """One call on one stream: reassembles request messages, runs the handler, sends its replies."""

    __slots__ = ("conn", "st", "method", "ctx", "max_size", "buf", "requests", "ended", "waiter", "task",
                 "headers_sent", "failed")

    def __init__(self, conn: H2Protocol, st: Stream, method: GrpcMethod, ctx: CallContext, max_size: int) -> None:
        self.conn = conn
        self.st = st
        self.method = method
        self.ctx = ctx
        self.max_size = max_size
        self.buf = bytearray()
        self.requests: collections.deque[bytes] = collections.deque()
        self.ended = False
        self.waiter: asyncio.Future | None = None
        self.task: asyncio.Task | None = None
        self.headers_sent = False
        self.failed = False
        if method.kind == BIDI:
            self.task = conn.loop.create_task(self._run_stream(method.handler(self._iter_requests(), ctx)))

    # --- StreamHandler --------------------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        if self.failed:
            return
        buf = self.buf
        if not buf and len(data) >= 5:
            flag, n = _PREFIX.unpack_from(data)
            if len(data) == n + 5 and not flag and n <= self.max_size:
                self._deliver(data[5:])
                return
        buf += data
        while len(buf) >= 5:
            flag, n = _PREFIX.unpack_from(buf)
            if n > self.max_size:
                self._fail(errors.RESOURCE_EXHAUSTED, f"grpc: received message larger than max ({n} vs. {self.max_size})")
                return
            if len(buf) < n + 5:
                return
            if flag:     # checked once the message is in, as grpc-go does
                self._fail(errors.INTERNAL, "grpc: compressed flag set with identity or empty encoding" if flag == 1
                           else f"grpc: received unexpected payload format {flag}")
                return
            self._deliver(bytes(buf[5:n + 5]))
            del buf[:n + 5]

    def on_end(self) -> None:
        if self.failed:
            return
        self.ended = True
        if self.buf:     # what etcd's handler returns when grpc-go's RecvMsg meets the end
            self._fail(errors.UNKNOWN, "unexpected EOF")
            return
        if self.method.kind == BIDI:
            self._wake()
            return
        if len(self.requests) != 1:
            self._fail(errors.INTERNAL, "grpc: expected one request message, got %d" % len(self.requests))
            return
        raw = self.requests.popleft()
        if self.method.kind == UNARY:
            self.task = self.conn.loop.create_task(self._run_unary(raw))
        else:
            self.task = self.conn.loop.create_task(self._run_server_stream(raw))

    def on_reset(self) -> None:
        self.failed = True
        if self.task is not None:
            self.task.cancel()
        self._wake()

    # --- internals --------------------------------------------------------------------------------

    def _deliver(self, raw: bytes) -> None:
        if self.method.kind != BIDI and self.requests:
            return       # grpc-go reads a unary call's first message and ignores the rest
        self.requests.append(raw)
        if self.method.kind == BIDI:
            self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _parse(self, raw: bytes) -> Message:
        try:
            return self.method.request_type.FromString(raw)
        except DecodeError as e:
            raise EtcdError(errors.INTERNAL, f"grpc: error unmarshalling request: {e}") from None

    def _fail(self, code: int, message: str) -> None:
        """End the call with an error status (trailers-only when nothing was sent yet)."""
        self.failed = True
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        block = status_block(code, message)
        if not self.headers_sent:
            block = RESPONSE_HEADERS + block
        self.conn.send_headers(self.st, block, end_stream=True)

    async def _iter_requests(self) -> AsyncIterator[Message]:
        requests = self.requests
        while True:
            if requests:
                yield self._parse(requests.popleft())
            elif self.ended or self.failed:
                return
            else:
                self.waiter = self.conn.loop.create_future()
                try:
                    await self.waiter
                finally:
                    self.waiter = None

    async def _run_unary(self, raw: bytes) -> None:
        try:
            reply = await self.method.handler(self._parse(raw), self.ctx)
            payload = reply.SerializeToString()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._fail(*_status_of(e, self.ctx.method))
            return
        self.conn.send_response(self.st, RESPONSE_HEADERS, _PREFIX.pack(0, len(payload)) + payload, TRAILERS_OK)

    async def _run_server_stream(self, raw: bytes) -> None:
        try:
            request = self._parse(raw)
        except EtcdError as e:
            self._fail(e.code, e.message)
            return
        await self._run_stream(self.method.handler(request, self.ctx))

    async def _run_stream(self, replies: AsyncIterator[Message]) -> None:
        conn, st = self.conn, self.st
        try:
            async for reply in replies:  # (messages, or Framed ones)
                if type(reply) is Framed:
                    data = reply
                else:
                    payload = reply.SerializeToString()
                    data = _PREFIX.pack(0, len(payload)) + payload
                if not self.headers_sent:
                    self.headers_sent = True
                    conn.send_headers(st, RESPONSE_HEADERS)
                conn.send_data(st, data)
                if not conn.writable(st):
                    await conn.wait_writable(st)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._fail(*_status_of(e, self.ctx.method))
            return
        finally:
            aclose = getattr(replies, "aclose", None)
            if aclose is not None:
                await aclose()
        if self.headers_sent:
            conn.send_headers(st, TRAILERS_OK, end_stream=True)
        else:
            conn.send_headers(st, RESPONSE_HEADERS + TRAILERS_OK, end_stream=True)
