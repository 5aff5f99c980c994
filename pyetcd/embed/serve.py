"""The client-port listener: gRPC (HTTP/2) and plain HTTP/1.1 on one port, as etcd serves them.

Each new connection is sniffed: the HTTP/2 client preface means HTTP/2, anything else HTTP/1.1.
On HTTP/2, requests with a gRPC content-type go to the gRPC methods and the others to the same
HTTP handler as HTTP/1.1 (so a TLS client that negotiated "h2" can still GET /health).
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any, Awaitable, Callable

from google.protobuf import message_factory

from pyetcd import errors
from pyetcd.errors import EtcdError

from .grpc import BIDI, SERVER_STREAM, UNARY, CallContext, GrpcDispatcher, GrpcMethod
from .h2 import INTERNAL_ERROR, PREFACE, H2Protocol, Stream, StreamHandler, encode_headers
from .http1 import (FRAMING_HEADERS, MAX_BODY, Http1Protocol, HttpHandler, HttpRequest, HttpResponse, call_handler,
                    is_request_line, split_target)

__all__ = ["CallContext", "ClientServer", "GrpcMethod", "HttpRequest", "HttpResponse", "serve", "unary_methods"]

log = logging.getLogger("pyetcd.embed")

GRACE_SECONDS = 2.0
SNIFF_LIMIT = 4096        # bytes cmux reads looking for an HTTP/1 request line


class H2HttpExchange:
    """A plain HTTP request that arrived over HTTP/2, served by the HTTP/1.1 handler."""

    __slots__ = ("conn", "st", "pseudo", "fields", "handler", "body", "task", "failed")

    def __init__(self, conn: H2Protocol, st: Stream, pseudo: dict[str, str], fields: dict[str, str],
                 handler: HttpHandler) -> None:
        self.conn = conn
        self.st = st
        self.pseudo = pseudo
        self.fields = fields
        self.handler = handler
        self.body = bytearray()
        self.task: asyncio.Task | None = None
        self.failed = False

    def on_data(self, data: bytes) -> None:
        if self.failed:
            return
        self.body += data
        if len(self.body) > MAX_BODY:
            self.failed = True
            self.conn.send_headers(self.st, encode_headers([(":status", "413")]), end_stream=True)

    def on_end(self) -> None:
        if self.failed:
            return
        path, query = split_target(self.pseudo.get(":path", "/"))
        headers = dict(self.fields)
        if ":authority" in self.pseudo:
            headers.setdefault("host", self.pseudo[":authority"])
        request = HttpRequest(self.pseudo[":method"], path, query, headers, bytes(self.body))
        self.task = self.conn.loop.create_task(self._run(request))

    def on_reset(self) -> None:
        self.failed = True
        if self.task is not None:
            self.task.cancel()

    async def _run(self, request: HttpRequest) -> None:
        conn, st = self.conn, self.st
        response = await call_handler(self.handler, request)
        fields = [(":status", str(response.status))]
        fields += [(k.lower(), v) for k, v in response.headers if k.lower() not in FRAMING_HEADERS]
        body = response.body
        head_only = request.method == "HEAD"
        if isinstance(body, (bytes, bytearray, memoryview)):
            fields.append(("content-length", str(len(body))))
            if head_only or not body:
                conn.send_headers(st, encode_headers(fields), end_stream=True)
            else:
                conn.send_response(st, encode_headers(fields), bytes(body))
            return
        conn.send_headers(st, encode_headers(fields))
        try:
            if not head_only:
                async for chunk in body:
                    if chunk:
                        conn.send_data(st, chunk)
                        if not conn.writable(st):
                            await conn.wait_writable(st)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HTTP/2 response body failed on %s", request.path)
            conn.reset_stream(st, INTERNAL_ERROR)
            return
        finally:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()
        conn.send_data(st, b"", end_stream=True)


class _Sniffer(asyncio.Protocol):
    """Holds a new connection until its first bytes tell HTTP/2 from HTTP/1.1, as etcd's cmux does.

    The HTTP/2 client preface means HTTP/2; a first line that parses as an HTTP/1.x request line
    (within 4096 bytes) means HTTP/1.1; anything else (TLS to a plain port, random bytes) is closed
    at once without an answer, as etcd closes it.
    """

    def __init__(self, server: ClientServer) -> None:
        self._server = server
        self._buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._server._conns.add(self)
        if self._server._closing:
            transport.close()

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data
        n = min(len(buf), len(PREFACE))
        if buf[:n] == PREFACE[:n]:
            if n < len(PREFACE):
                self._buf = buf
                return
            proto: asyncio.Protocol = H2Protocol(self._server._open_stream, self._server._lost)
        else:
            eol = buf.find(b"\n", 0, SNIFF_LIMIT)
            if eol < 0:
                if len(buf) >= SNIFF_LIMIT:
                    self.transport.close()
                else:
                    self._buf = buf
                return
            if not is_request_line(buf[:eol]):
                self.transport.close()
                return
            proto = Http1Protocol(self._server._http_handler, self._server._lost)
        self._server._conns.discard(self)
        self._server._conns.add(proto)
        self.transport.set_protocol(proto)
        proto.connection_made(self.transport)
        proto.data_received(buf)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._lost(self)

    def shutdown(self) -> None:
        self.transport.close()

    def abort(self) -> None:
        self.transport.abort()


class ClientServer:
    """A listening client port. ``close()`` stops accepting and ends connections gracefully."""

    def __init__(self, grpc: GrpcDispatcher, http_handler: HttpHandler) -> None:
        self._grpc = grpc
        self._http_handler = http_handler
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[Any] = set()
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._abort_handle: asyncio.TimerHandle | None = None
        self.port = 0

    def _open_stream(self, conn: H2Protocol, st: Stream, pseudo: dict[str, str], fields: dict[str, str]) -> StreamHandler:
        ctype = fields.get("content-type", "")
        if ctype.startswith("application/grpc") and (len(ctype) == 16 or ctype[16] in "+;"):   # as grpc-go
            return self._grpc.open_call(conn, st, pseudo, fields)
        return H2HttpExchange(conn, st, pseudo, fields, self._http_handler)

    def _lost(self, conn: Any) -> None:
        self._conns.discard(conn)
        if not self._conns:
            self._idle.set()

    def close(self, grace: float = GRACE_SECONDS) -> None:
        """Stop listening; GOAWAY to HTTP/2 clients; connections still busy after grace are cut."""
        if self._closing:
            return
        self._closing = True
        self._server.close()
        for conn in list(self._conns):
            conn.shutdown()
        if self._conns:
            self._idle.clear()
            self._abort_handle = asyncio.get_running_loop().call_later(grace, self._abort_all)

    def _abort_all(self) -> None:
        for conn in list(self._conns):
            conn.abort()

    async def wait_closed(self) -> None:
        await self._server.wait_closed()
        await self._idle.wait()
        if self._abort_handle is not None:
            self._abort_handle.cancel()


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free one).

    Bound before the member dials its peers, as etcd opens its listeners before the server starts:
    otherwise an outgoing connection's ephemeral port can take the client port first. Connections
    wait in the backlog until serve() takes the socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        error = OSError(f"listen tcp {address}: bind: {(e.strerror or str(e)).lower()}")
        error.errno = e.errno
        raise error from None
    return sock


async def serve(sock: socket.socket, *, grpc_methods: dict[str, GrpcMethod],
                http_handler: Callable[[HttpRequest], Awaitable[HttpResponse]],
                ssl_context: ssl.SSLContext | None = None, max_recv_msg_size: int = 4 << 20) -> ClientServer:
    """Serve gRPC and HTTP/1.1 clients on a socket from listen()."""
    server = ClientServer(GrpcDispatcher(grpc_methods, max_recv_msg_size), http_handler)
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(["h2", "http/1.1"])
    loop = asyncio.get_running_loop()
    server._server = await loop.create_server(lambda: _Sniffer(server), sock=sock, ssl=ssl_context, backlog=1024)
    server.port = server._server.sockets[0].getsockname()[1]
    return server


def unary_methods(service_descriptor: Any, impl: object) -> dict[str, GrpcMethod]:
    """Every RPC of a service, bound to the method of impl with the RPC's name.

    The kind follows the descriptor (streaming requests -> 'bidi', streaming replies only ->
    'server_stream', else 'unary'). RPCs impl lacks answer UNIMPLEMENTED with grpc-go's message
    for a registered service whose implementation leaves the method out: "method X not implemented".
    """
    methods: dict[str, GrpcMethod] = {}
    for m in service_descriptor.methods:
        kind = BIDI if m.client_streaming else SERVER_STREAM if m.server_streaming else UNARY
        handler = getattr(impl, m.name, None) or _unimplemented(m.name, kind)
        methods[f"/{service_descriptor.full_name}/{m.name}"] = GrpcMethod(
            message_factory.GetMessageClass(m.input_type), handler, kind)
    return methods


def _unimplemented(name: str, kind: str) -> Callable[..., Any]:
    error = EtcdError(errors.UNIMPLEMENTED, f"method {name} not implemented")

    async def unary(request: Any, ctx: CallContext) -> Any:
        raise error

    async def stream(request: Any, ctx: CallContext) -> Any:
        raise error
        yield  # an async generator

    return unary if kind == UNARY else stream
