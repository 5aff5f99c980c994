"""HTTP/1.1 on the client port: request parsing, response writing, one request at a time.

Serves /health, /version, /metrics, the /v3 JSON gateway and the /v2 API. Keep-alive,
Content-Length and chunked request bodies, ``Expect: 100-continue``; a response body given as an
async iterator goes out chunked, one chunk per item (the gateway's streaming watch).
"""
from __future__ import annotations

import asyncio
import email.utils
import http
import logging
import re
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable

log = logging.getLogger("pyetcd.embed")

MAX_HEAD = 1 << 20        # as Go's http.DefaultMaxHeaderBytes
MAX_BODY = 64 << 20
MAX_CHUNK_LINE = 4096     # a chunk-size line with its extensions, as Go's net/http


@dataclass
class HttpRequest:
    method: str
    path: str
    query: str                    # raw, without the '?'
    headers: dict[str, str]       # lower-case names; repeated fields joined with ", "
    body: bytes


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | AsyncIterator[bytes] = b""


HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]

# Framing is ours to decide: a handler's values for these are dropped.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


class BadRequest(Exception):
    """A request we refuse before any handler sees it, answered as Go's net/http answers it:
    the status line carries the detail ("400 Bad Request: missing required Host header"), the
    body repeats it (or is ``body``), no Content-Length, and the connection closes."""

    def __init__(self, status: int, detail: str = "", body: str | None = None) -> None:
        text = f"{status} {http.HTTPStatus(status).phrase}" + (f": {detail}" if detail else "")
        super().__init__(text)
        self.status = status
        self.text = text
        self.body = text if body is None else body

    def render(self) -> bytes:
        return (f"HTTP/1.1 {self.text}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
                f"{self.body}").encode("latin-1")


async def call_handler(handler: HttpHandler, request: HttpRequest) -> HttpResponse:
    """The handler's response; a 500 when it raises."""
    try:
        return await handler(request)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("HTTP handler failed on %s %s", request.method, request.path)
        return HttpResponse(500, [("Content-Type", "text/plain; charset=utf-8")], b"Internal Server Error\n")


def split_target(target: str) -> tuple[str, str]:
    """(path, query) of a request target in origin form or absolute form."""
    if not target.startswith("/") and "://" in target:
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    path, _, query = target.partition("?")
    return path, query


def is_request_line(line: bytes) -> bool:
    """Whether line (without its LF) reads as "METHOD SP TARGET SP HTTP/1.x", as cmux matches HTTP/1."""
    first = line.find(b" ")
    second = line.find(b" ", first + 1) if first >= 0 else -1
    if second < 0:
        return False
    version = line[second + 1:].rstrip(b"\r")
    major, dot, minor = version[5:].partition(b".")
    return version[:5] == b"HTTP/" and major == b"1" and bool(dot) and minor.isdigit()


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
HEAD_END = re.compile(rb"\r?\n\r?\n")     # the blank line; bare LFs are accepted, as Go does


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Method, target, version and fields of a request head (without the blank line), refused
    with Go's net/http answers."""
    lines = [line[:-1] if line.endswith("\r") else line for line in head.decode("latin-1").split("\n")]
    parts = lines[0].split(" ")
    if (len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha()
            or not (parts[1].startswith("/") or parts[1] == "*" or "://" in parts[1])):
        raise BadRequest(400)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(400)
        if not name or not _TOKEN.issuperset(name):
            raise BadRequest(400, "invalid header name")
        name = name.lower()
        value = value.strip(" \t")
        old = headers.get(name)
        if old is not None and name == "content-length" and old != value:
            raise BadRequest(400)
        headers[name] = value if old is None else old if name == "content-length" else f"{old}, {value}"
    if parts[2] != "HTTP/1.0" and "host" not in headers:
        raise BadRequest(400, "missing required Host header")
    return parts[0], parts[1], parts[2], headers


class ChunkedBody:
    """A chunked request body decoded as it arrives: each byte is looked at once, so a body
    of many tiny chunks costs linear time however it is split into reads."""

    __slots__ = ("body", "_need", "_in_trailers", "_trailer_bytes")

    def __init__(self) -> None:
        self.body = bytearray()
        self._need = -1              # bytes of the current chunk (with its CRLF) still to come; -1: a size line
        self._in_trailers = False
        self._trailer_bytes = 0

    def feed(self, buf: bytearray) -> bool:
        """Consume what buf holds of the body; True once the whole body (and trailers) is in."""
        pos = 0
        try:
            while True:
                if self._need >= 0:
                    need = self._need
                    if len(buf) - pos < need:
                        return False
                    if buf[pos + need - 2:pos + need] != b"\r\n":
                        raise BadRequest(400)
                    self.body += buf[pos:pos + need - 2]
                    pos += need
                    self._need = -1
                    continue
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if len(buf) - pos > MAX_CHUNK_LINE and not self._in_trailers:
                        raise BadRequest(400)
                    if self._trailer_bytes + len(buf) - pos > MAX_HEAD:
                        raise BadRequest(431)
                    return False
                if self._in_trailers:      # trailer fields, then the blank line
                    self._trailer_bytes += eol + 2 - pos
                    if self._trailer_bytes > MAX_HEAD:
                        raise BadRequest(431)
                    done = eol == pos
                    pos = eol + 2
                    if done:
                        return True
                    continue
                size = _chunk_size(bytes(buf[pos:eol]))
                if len(self.body) + size > MAX_BODY:
                    raise BadRequest(413)
                pos = eol + 2
                if size == 0:
                    self._in_trailers = True
                else:
                    self._need = size + 2
        finally:
            del buf[:pos]


def _chunk_size(line: bytes) -> int:
    text = line.split(b";", 1)[0].strip()
    if not text or text.lstrip(b"0123456789abcdefABCDEF"):
        raise BadRequest(400)
    return int(text, 16)


_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


def render_head(status: int, headers: list[tuple[str, str]]) -> bytes:
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _has_body(status: int) -> bool:
    return status >= 200 and status not in (204, 304)


class Http1Protocol(asyncio.Protocol):
    def __init__(self, handler: HttpHandler, on_lost: Callable[[asyncio.BaseProtocol], None] | None = None) -> None:
        self._handler = handler
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self._buf = bytearray()
        self._head: tuple[str, str, str, dict[str, str]] | None = None
        self._scanned = 0                       # bytes of _buf already searched for the head's end
        self._chunked: ChunkedBody | None = None
        self._continue_sent = False
        self._task: asyncio.Task | None = None
        self._close_after = False
        self._closing = False
        self._paused = False
        self._drain: asyncio.Future | None = None

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._task is None and not self._closing:
            self._next()
        self._flow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        if self._on_lost is not None:
            self._on_lost(self)

    def pause_writing(self) -> None:
        self._paused = True
        self._flow()

    def resume_writing(self) -> None:
        self._paused = False
        self._flow()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _flow(self) -> None:
        """Read only while we can write, and while pipelined requests waiting behind the one
        in progress stay under MAX_HEAD: a client that sends and never reads is held in check."""
        if self._paused or (self._task is not None and len(self._buf) > MAX_HEAD):
            self.transport.pause_reading()
        elif not self._closing:
            self.transport.resume_reading()

    # --- shutdown -----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Close once the response in progress (if any) is written."""
        self._close_after = True
        if self._task is None:
            self._close()

    def abort(self) -> None:
        self._closing = True
        self.transport.abort()

    def _close(self) -> None:
        self._closing = True
        self.transport.close()

    # --- requests -----------------------------------------------------------------------------

    def _next(self) -> None:
        try:
            parsed = self._parse()
        except BadRequest as e:
            self.transport.write(e.render())
            self._close()
            return
        if parsed is not None:
            self._task = self.loop.create_task(self._serve(*parsed))

    def _parse(self) -> tuple[HttpRequest, bool] | None:
        buf = self._buf
        if self._head is None:
            end = HEAD_END.search(buf, self._scanned)
            if end is None:
                if len(buf) > MAX_HEAD:
                    raise BadRequest(431)
                self._scanned = max(0, len(buf) - 3)
                return None
            self._scanned = 0
            self._head = parse_head(bytes(buf[:end.start()]))
            del buf[:end.end()]
        method, target, version, headers = self._head
        te = headers.get("transfer-encoding")
        if te is not None:
            if te.lower() != "chunked":
                raise BadRequest(501, body="Unsupported transfer encoding")
            if self._chunked is None:
                self._chunked = ChunkedBody()
            if not self._chunked.feed(buf):
                self._maybe_continue(headers)
                return None
            body, used = bytes(self._chunked.body), 0
            self._chunked = None
        else:
            cl = headers.get("content-length", "0")
            if not cl.isdigit():
                raise BadRequest(400)
            used = int(cl)
            if used > MAX_BODY:
                raise BadRequest(413)
            if len(buf) < used:
                self._maybe_continue(headers)
                return None
            body = bytes(buf[:used])
        del buf[:used]
        self._head = None
        self._continue_sent = False
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            keep_alive = "keep-alive" in connection
        else:
            keep_alive = "close" not in connection
        path, query = split_target(target)
        return HttpRequest(method, path, query, headers, body), keep_alive

    def _maybe_continue(self, headers: dict[str, str]) -> None:
        if not self._continue_sent and headers.get("expect", "").lower() == "100-continue":
            self._continue_sent = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    async def _serve(self, request: HttpRequest, keep_alive: bool) -> None:
        try:
            response = await call_handler(self._handler, request)
            keep_alive = await self._respond(response, keep_alive, request.method == "HEAD")
            if self._paused:          # the next pipelined request waits until this answer is taken
                await self._drained()
        finally:
            self._task = None
        if not keep_alive or self._close_after:
            self._close()
            return
        if self._buf:
            self._next()
        self._flow()

    async def _drained(self) -> None:
        """Until the transport takes writes again (or the connection is gone)."""
        if not self._closing:
            self._drain = self.loop.create_future()
            await self._drain

    async def _respond(self, response: HttpResponse, keep_alive: bool, head_only: bool) -> bool:
        headers = [(k, v) for k, v in response.headers if k.lower() not in FRAMING_HEADERS]
        if any(k.lower() == "connection" and "close" in v.lower() for k, v in response.headers):
            keep_alive = False
        if not any(k.lower() == "date" for k, _ in headers):
            headers.append(("Date", http_date()))
        if not keep_alive:
            headers.append(("Connection", "close"))
        body = response.body
        if isinstance(body, (bytes, bytearray, memoryview)):
            if _has_body(response.status):
                headers.append(("Content-Length", str(len(body))))
            self.transport.write(render_head(response.status, headers) + (b"" if head_only else bytes(body)))
            return keep_alive
        headers.append(("Transfer-Encoding", "chunked"))
        self.transport.write(render_head(response.status, headers))
        try:
            if not head_only:
                async for chunk in body:
                    if chunk:
                        self.transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                        if self._paused:
                            await self._drained()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HTTP response body failed")
            return False     # the response is cut short: only closing the connection says so
        finally:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()
        self.transport.write(b"0\r\n\r\n")
        return keep_alive
