"""HTTP/1.1 request parsing and response writing of pyetcd.embed, without sockets."""
from __future__ import annotations

import asyncio

import pytest

from embed_harness import FakeTransport, until
from pyetcd.embed.http1 import BadRequest, Http1Protocol, HttpRequest, HttpResponse, ChunkedBody, parse_head, split_target


def test_parse_head_and_target():
    method, target, version, headers = parse_head(
        b"POST /v3/kv/range?x=1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nContent-Length:  3 ")
    assert (method, target, version) == ("POST", "/v3/kv/range?x=1", "HTTP/1.1")
    assert headers == {"host": "a", "x-a": "1, 2", "content-length": "3"}
    assert split_target("/v2/keys/a?recursive=true") == ("/v2/keys/a", "recursive=true")
    assert split_target("http://h:2379/health") == ("/health", "")
    with pytest.raises(BadRequest):
        parse_head(b"GARBAGE")


# What etcd 3.5.1 (Go's net/http) answers, byte for byte, probed on the real binary.
_GO_ERROR = b"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize("request_bytes, answer", [
    (b"GET /health HTTP/1.1\r\n\r\n", b"400 Bad Request: missing required Host header"),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", b"400 Bad Request: invalid header name"),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", b"400 Bad Request"),
    (b"G@T /health HTTP/1.1\r\nHost: x\r\n\r\n", b"400 Bad Request"),
    (b"GET health HTTP/1.1\r\nHost: x\r\n\r\n", b"400 Bad Request"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", b"400 Bad Request"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", b"400 Bad Request"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * (1 << 20) + b"\r\n", b"431 Request Header Fields Too Large"),
])
async def test_refusals_are_go_net_http_answers(request_bytes, answer):
    s = Server()
    s.proto.data_received(request_bytes)
    assert s.transport.take() == b"HTTP/1.1 " + answer + _GO_ERROR + answer
    assert s.transport.closed


async def test_unsupported_transfer_encoding_is_go_net_http_answer():
    s = Server()
    s.proto.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert s.transport.take() == b"HTTP/1.1 501 Not Implemented" + _GO_ERROR + b"Unsupported transfer encoding"


async def test_bare_lf_line_endings_are_accepted_as_go_does():
    s = Server()
    s.proto.data_received(b"GET /health HTTP/1.1\nHost: x\n\n")
    assert (await s.response()).startswith(b"HTTP/1.1 200 OK")


def _chunked(data: bytes) -> tuple[bytes, bytes] | None:
    """(body, what is left after it) when data holds the whole chunked body, else None."""
    buf = bytearray(data)
    decoder = ChunkedBody()
    return (bytes(decoder.body), bytes(buf)) if decoder.feed(buf) else None


def test_chunked_body():
    body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT"
    assert _chunked(body) == (b"Wikipedia", b"NEXT")
    for cut in range(len(body) - 4):
        assert _chunked(body[:cut]) is None
    for bad in (b"zz\r\n", b"0x4\r\n", b"-4\r\n", b"\r\n", b"4\r\nWikiXX", b"1" * 5000):
        with pytest.raises(BadRequest):
            _chunked(bad)


def test_chunked_body_fed_in_pieces_is_decoded_once():
    """Byte by byte, each feed consumes what it can: a body of many tiny chunks costs linear time."""
    data = b"1\r\nx\r\n" * 1000 + b"0\r\n\r\n"
    decoder, buf = ChunkedBody(), bytearray()
    done = False
    for i in range(len(data)):
        buf.append(data[i])
        done = decoder.feed(buf)
        assert len(buf) <= 7      # never more than one incomplete line or chunk is held back
    assert done and decoder.body == b"x" * 1000 and not buf


class Server:
    def __init__(self, handler=None) -> None:
        self.requests: list[HttpRequest] = []
        self.transport = FakeTransport()
        self.proto = Http1Protocol(handler or self.echo)
        self.proto.connection_made(self.transport)

    async def echo(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return HttpResponse(200, [("Content-Type", "text/plain")], b"got:" + request.body)

    async def response(self, count: int = 1) -> bytes:
        await until(lambda: self.transport.written.count(b"HTTP/1.1 2") + self.transport.written.count(b"HTTP/1.1 4")
                    + self.transport.written.count(b"HTTP/1.1 5") >= count and self.proto._task is None, "response")
        return self.transport.take()


async def test_keep_alive_requests_in_sequence():
    s = Server()
    s.proto.data_received(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    out = await s.response()
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 4\r\n" in out and out.endswith(b"\r\n\r\ngot:")
    assert b"Date: " in out and not s.transport.closed
    s.proto.data_received(b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
    s.proto.data_received(b"cde")
    assert (await s.response()).endswith(b"got:abcde")
    assert [(r.method, r.path, r.body) for r in s.requests] == [("GET", "/health", b""), ("POST", "/v3/kv/put", b"abcde")]


async def test_chunked_request_body_byte_by_byte():
    s = Server()
    raw = b"POST /v2/keys/a?x=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    for i in range(len(raw)):
        s.proto.data_received(raw[i:i + 1])
    assert (await s.response()).endswith(b"got:abcde")
    assert (s.requests[0].path, s.requests[0].query) == ("/v2/keys/a", "x=1")


async def test_expect_100_continue():
    s = Server()
    s.proto.data_received(b"PUT /v2/keys/a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert s.transport.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.proto.data_received(b"hi")
    assert (await s.response()).endswith(b"got:hi")


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
])
async def test_connection_close(request_bytes):
    s = Server()
    s.proto.data_received(request_bytes)
    out = await s.response()
    assert b"Connection: close\r\n" in out
    assert s.transport.closed


async def test_bad_request_closes():
    s = Server()
    s.proto.data_received(b"NOT HTTP\r\n\r\n")
    assert s.transport.take().startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert s.transport.closed


async def test_handler_exception_is_500():
    async def broken(request):
        raise ValueError("nope")
    s = Server(broken)
    s.proto.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await s.response()).startswith(b"HTTP/1.1 500 Internal Server Error")


async def test_streaming_body_is_chunked_and_closed_on_disconnect():
    release = asyncio.Event()
    closed = asyncio.Event()

    async def chunks():
        try:
            yield b"first\n"
            await release.wait()
            yield b"second\n"
            await asyncio.Event().wait()
        finally:
            closed.set()

    async def watch(request):
        return HttpResponse(200, [("Content-Type", "application/json")], chunks())
    s = Server(watch)
    s.proto.data_received(b"POST /v3/watch HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: b"first" in s.transport.written, "first chunk")
    release.set()
    await until(lambda: b"second" in s.transport.written, "second chunk")
    out = s.transport.take()
    assert b"Transfer-Encoding: chunked\r\n" in out
    assert out.endswith(b"\r\n\r\n6\r\nfirst\n\r\n7\r\nsecond\n\r\n")
    s.proto.connection_lost(None)
    await until(closed.is_set, "generator closed")


async def test_shutdown_waits_for_response_in_progress():
    gate = asyncio.Event()

    async def slow(request):
        await gate.wait()
        return HttpResponse(204, [], b"")
    s = Server(slow)
    s.proto.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: s.proto._task is not None, "task")
    s.proto.shutdown()
    assert not s.transport.closed
    gate.set()
    await until(lambda: s.transport.closed, "closed")
    out = s.transport.take()
    assert out.startswith(b"HTTP/1.1 204 No Content\r\n") and b"Content-Length" not in out


async def test_reading_pauses_while_writes_are_blocked_or_pipelined_requests_pile_up():
    """A client that sends and never reads is held in check: no unbounded buffers."""
    gate = asyncio.Event()

    async def slow(request):
        await gate.wait()
        return HttpResponse(200, [], b"ok")

    s = Server(slow)
    s.proto.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: s.proto._task is not None, "request in progress")
    s.proto.data_received(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n" * 100)      # a little pipelining is fine
    assert s.transport.reading
    s.proto.data_received(b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n" * 60000)    # over MAX_HEAD behind a slow one: stop
    assert not s.transport.reading
    gate.set()
    await until(lambda: s.transport.reading, "reading resumes once the backlog is served", turns=100000)
    s.proto.pause_writing()
    assert not s.transport.reading
    s.proto.resume_writing()
    assert s.transport.reading


async def test_huge_head_sent_in_small_pieces_is_scanned_once():
    s = Server()
    piece = b"X-Long: " + b"a" * 1000 + b"\r\n"
    s.proto.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")
    for _ in range(200):
        s.proto.data_received(piece)
        assert s.proto._scanned >= len(s.proto._buf) - 3
    s.proto.data_received(b"\r\n")
    assert (await s.response()).startswith(b"HTTP/1.1 200 OK")
